"""PRM training: packed rows (rmdata) vs right-padded batches (the TRL PRMTrainer way), same model and solutions.

    python benchmarks/prm_training.py                  # ~2-4 minutes on one CPU core
    python benchmarks/prm_training.py --solutions 64 --max-packed-length 4096 --hidden-size 256 --layers 4

One tiny Llama reward model (``rmdata.model.tiny``, the ``<|reward|>`` token as the step separator) is built,
copied, and trained one epoch on the same random labelled solutions (a prompt and 2-``--max-steps`` steps of
random lengths, rendered with ``rmdata.tokens.steps``) two ways:

- ``packed``: ``rmdata.train.steps``: solutions packed into rows of ``--max-packed-length`` tokens (best-fit
  decreasing), one row per optimizer step, varlen attention, the value head at every separator, BCE per step;
- ``padded``: the same number of solutions per optimizer step (rounded), in a seeded random order,
  right-padded to the longest with an ``attention_mask``, transformers' own SDPA attention, the head gathered
  at the same separators, the same loss.

Both steps are forward, backward and AdamW. Times are process CPU seconds with one torch thread.
``tokens_per_cpu_s`` counts real (unpadded) tokens; ``ratio`` = packed / padded real tokens per CPU second
(the issue's goal is >= 3). ``first_loss_diff`` checks that the two compute the same loss on the first batch
of solutions before any update (the same function, two layouts). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def _examples(args: argparse.Namespace, tokenizer: Any, token: Any) -> list[Any]:
    from rmdata.data.stepwise import StepRow
    from rmdata.tokens.steps import SEPARATOR, StepTemplate, StepTokens, tokenize_steps
    from rmdata.train.steps import StepExample

    rng = np.random.default_rng(args.seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789 +-=."))

    def text(n: int) -> str:
        return "".join(rng.choice(letters, size=max(1, n)).tolist()).strip() or "x"

    template = StepTemplate(SEPARATOR, token.text, token.id)
    out = []
    for i in range(args.solutions):
        n = int(rng.integers(2, args.max_steps + 1))
        steps = tuple(text(int(rng.lognormal(3.6, 0.5))) for _ in range(n))
        labels = tuple(float(x) for x in rng.random(n) < 0.7)
        tokens = tokenize_steps(
            tokenizer, template, StepRow(text(int(rng.lognormal(4.5, 0.6))), steps, labels, f"s:{i}")
        )
        assert isinstance(tokens, StepTokens)
        if len(tokens.input_ids) <= args.max_packed_length:
            out.append(StepExample(tokens.input_ids, tokens.step_positions, np.asarray(labels, np.float32)))
    return out


def _padded_loss(model: Any, members: list[Any], total: int) -> torch.Tensor:
    from rmdata.train.steps import step_loss

    width = max(len(e.input_ids) for e in members)
    ids = torch.zeros(len(members), width, dtype=torch.long)
    mask = torch.zeros(len(members), width, dtype=torch.long)
    for row, e in enumerate(members):
        ids[row, : len(e.input_ids)] = torch.from_numpy(e.input_ids)
        mask[row, : len(e.input_ids)] = 1
    rows = torch.cat([torch.full((len(e.step_positions),), i) for i, e in enumerate(members)])
    cols = torch.from_numpy(np.concatenate([e.step_positions for e in members]))
    hidden = model.trunk(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[rows, cols]
    labels = torch.from_numpy(np.concatenate([e.labels for e in members]))
    return step_loss(model.score_hidden(hidden).unsqueeze(-1), labels, total)


def _packed_loss(model: Any, members: list[Any], total: int) -> torch.Tensor:
    from rmdata.train.steps import pack_step_examples, step_loss, step_values

    batch, index, labels = pack_step_examples(members)
    return step_loss(step_values(model, batch, index), labels, total)


def _epoch(model: Any, groups: list[list[Any]], loss_fn: Any, lr: float) -> tuple[float, int]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    start = time.process_time()
    for members in groups:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model, members, sum(len(e.labels) for e in members)).backward()
        optimizer.step()
    return time.process_time() - start, len(groups)


def _figures(steps: int, cpu_s: float, real_tokens: int) -> dict[str, float]:
    return {
        "optimizer_steps": steps,
        "cpu_s": round(cpu_s, 3),
        "tokens_per_cpu_s": round(real_tokens / cpu_s, 1),
        "steps_per_cpu_s": round(steps / cpu_s, 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rmdata.config import ModelConfig, TinyModelConfig
    from rmdata.model.reward_model import build_reward_model
    from rmdata.model.tiny import REWARD_TOKEN, build_tiny_tokenizer
    from rmdata.tokens.packing import plan_singles, rows_for_epoch
    from rmdata.tokens.reward_token import resolve_reward_token

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = build_tiny_tokenizer()
    token = resolve_reward_token(tokenizer, REWARD_TOKEN)
    sizes = TinyModelConfig(
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=args.hidden_size * 2,
        max_position_embeddings=max(8192, args.max_packed_length),
    )
    cfg = ModelConfig(name_or_path="tiny", tiny=sizes, reward_token=REWARD_TOKEN, attention="sdpa_varlen")
    packed_model = build_reward_model(cfg, tokenizer, token).model
    torch.nn.init.normal_(packed_model.value_head.weight, std=0.1)
    padded_model = copy.deepcopy(packed_model)
    padded_model.trunk.set_attn_implementation("sdpa")

    examples = _examples(args, tokenizer, token)
    plan = plan_singles([len(e.input_ids) for e in examples], args.max_packed_length)
    packed_groups = [[examples[u] for u in row.units] for row in rows_for_epoch(plan, 0, args.seed)]
    per_step = max(1, round(len(examples) / len(packed_groups)))
    order = np.random.default_rng([args.seed, 1]).permutation(len(examples)).tolist()
    padded_groups = [[examples[i] for i in order[s : s + per_step]] for s in range(0, len(order), per_step)]

    with torch.no_grad():
        first = padded_groups[0]
        total = sum(len(e.labels) for e in first)
        diff = abs(float(_packed_loss(packed_model, first, total)) - float(_padded_loss(padded_model, first, total)))

    real = int(sum(len(e.input_ids) for e in examples))
    padded_tokens = int(sum(len(g) * max(len(e.input_ids) for e in g) for g in padded_groups))
    packed_s, packed_steps = _epoch(packed_model, packed_groups, _packed_loss, args.lr)
    padded_s, padded_steps = _epoch(padded_model, padded_groups, _padded_loss, args.lr)
    result = {
        "benchmark": "prm_training",
        "device": "cpu",
        "threads": args.threads,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "model": {"hidden_size": args.hidden_size, "layers": args.layers},
        "solutions": len(examples),
        "steps_labelled": int(sum(len(e.labels) for e in examples)),
        "real_tokens": real,
        "max_packed_length": args.max_packed_length,
        "packing_efficiency": round(plan.efficiency, 4),
        "padded_computed_tokens": padded_tokens,
        "solutions_per_step": per_step,
        "packed": _figures(packed_steps, packed_s, real),
        "padded": _figures(padded_steps, padded_s, real),
        "first_loss_diff": diff,
    }
    result["ratio"] = round(result["packed"]["tokens_per_cpu_s"] / result["padded"]["tokens_per_cpu_s"], 3)
    result["targets"] = {"ratio>=3": result["ratio"] >= 3, "same_loss_1e-5": diff <= 1e-5}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=int, default=64, help="labelled solutions (one epoch)")
    parser.add_argument("--max-steps", type=int, default=24, help="steps per solution are drawn from 2..this")
    parser.add_argument("--max-packed-length", type=int, default=4096, help="tokens per packed row")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
