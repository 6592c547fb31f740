"""OpenRLHF ``query`` strings -> the text ``rmdata score`` would tokenize for the same conversation.

A query is a whole conversation as the policy rendered it: the prompt (chat template applied, generation
header included) followed by the decoded reply, often with the policy's EOS and pad tokens still attached.
The reward model's own chat template is read once (:meth:`QueryRule.of`, by rendering a probe conversation)
for two strings: ``header``, what it writes before an assistant reply (``<|im_start|>assistant\\n`` in
ChatML), and ``turn_end``, what it writes after one (``<|im_end|>\\n``).

- Where the reply starts: at ``len(prompts[i])`` when the request sends ``prompts`` and the query starts with
  its prompt; else right after the last ``header`` in the query; else (no header found) the whole query counts
  as reply, and :attr:`Canonical.matched` is False (the server counts such queries: they were rendered with
  another template and are scored as sent).
- Trailing pad and EOS token strings are removed from the reply, repeatedly (``...<|im_end|><|endoftext|>
  <|pad|><|pad|>`` -> ``...<|im_end|>``), never from the prompt.
- The reply is then closed the way the template closes it: nothing when it already ends with ``turn_end``,
  the rest of ``turn_end`` when it ends with its stripped form, else all of ``turn_end``.

So a query equal to ``render(prompt + [reply])``, or to ``render(prompt, add_generation_prompt=True) + reply
+ EOS + pads``, gives the same text, hence the same tokens and the same score, as ``rmdata score`` on the row
``{prompt, response: reply}``; the score position is the reward token appended after it (or its last token),
never a pad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rmdata.tokens.templates import render_conversation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_PROBE_USER = "rmdata-probe-question"
_PROBE_REPLY = "rmdata-probe-reply"


@dataclass(frozen=True)
class Canonical:
    text: str
    reply_start: int  # index in ``text`` where the reply begins
    matched: bool  # False when neither the prompt nor the template's header located the reply


@dataclass(frozen=True)
class QueryRule:
    header: str  # written before an assistant reply ("" when the template writes none we can isolate)
    turn_end: str  # written after an assistant reply
    strip: tuple[str, ...]  # pad and EOS token strings removed from the end of a reply

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> QueryRule:
        """Read ``header`` and ``turn_end`` off the tokenizer's chat template with a probe conversation."""
        user = [{"role": "user", "content": _PROBE_USER}]
        full = render_conversation(tokenizer, [*user, {"role": "assistant", "content": _PROBE_REPLY}])
        alone = render_conversation(tokenizer, user)
        asking = render_conversation(tokenizer, user, add_generation_prompt=True)
        at = full.rfind(_PROBE_REPLY)
        turn_end = full[at + len(_PROBE_REPLY) :] if at >= 0 else ""
        header = asking[len(alone) :] if asking.startswith(alone) and full.startswith(asking) else ""
        strip = tuple(t for t in {tokenizer.pad_token, tokenizer.eos_token} if isinstance(t, str) and t)
        return cls(header=header, turn_end=turn_end, strip=tuple(sorted(strip)))

    def canonical(self, query: str, prompt: str | None = None) -> Canonical:
        """The text to tokenize for ``query`` (see the module docstring); ``prompt``: its ``prompts[i]``."""
        if prompt and query.startswith(prompt):
            start, matched = len(prompt), True
        elif self.header and (at := query.rfind(self.header)) >= 0:
            start, matched = at + len(self.header), True
        else:
            start, matched = 0, False
        reply = query[start:]
        stripped = True
        while stripped:
            stripped = False
            for token in self.strip:
                if reply.endswith(token):
                    reply, stripped = reply[: -len(token)], True
        end = self.turn_end
        if not reply.endswith(end):
            closed = end.rstrip()
            reply += end[len(closed) :] if closed and reply.endswith(closed) else end
        return Canonical(query[:start] + reply, start, matched)
