"""Python clients of ``rmdata serve`` for RL frameworks: TRL's ``reward_funcs`` and verl's custom reward function.

Both send rows to ``POST /score`` of a running server (``url``, default ``$RMDATA_REWARD_URL`` or
``http://127.0.0.1:5000``; ``api_key`` default ``$RMDATA_SERVE_API_KEY``), or, given ``model_dir``, score in
this process with the same code the server runs (no HTTP, no batching across callers). Either way a reward is
the float ``rmdata score`` writes for the same ``(prompt, response)`` row.

- TRL: ``GRPOTrainer(reward_funcs=TRLReward(url=...))``; called as ``(prompts, completions, **kwargs)``, with
  plain strings or conversations (a prompt's messages, a completion's ``[{"role": "assistant", ...}]``).
- verl: ``custom_reward_function.path=<this file>``, ``name=verl_compute_score`` (one sample per call, the naive
  reward manager) or ``name=verl_compute_score_batch`` with ``reward_model.reward_manager=batch`` (one request per
  batch); ``+custom_reward_function.reward_kwargs.url=http://HOST:PORT``. verl hands a reward function the
  response only, so the prompt is read from ``extra_info[prompt_key]`` (default ``prompt``, then ``question``):
  put it there when preparing the dataset.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from rmdata.serve.config import API_KEY_ENV

if TYPE_CHECKING:
    import httpx

    from rmdata.serve.scorer import Scorer

URL_ENV = "RMDATA_REWARD_URL"
DEFAULT_URL = "http://127.0.0.1:5000"
CHUNK_ROWS = 256  # rows per request: under the server's default --max-request-rows (1024)


class RewardClient:
    """Rewards of ``{prompt, response}`` / ``{messages}`` rows from a server, or in-process from ``model_dir``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        model_dir: str | None = None,
        api_key: str | None = None,
        device: str = "auto",
        timeout_s: float = 300.0,
        retries: int = 5,
    ) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.retries = retries
        self._scorer: Scorer | None = None
        self._http: httpx.Client | None = None
        if model_dir is not None:
            from rmdata.model.loading import load_scoring_model
            from rmdata.serve.scorer import Scorer

            self._scorer = Scorer.of(load_scoring_model(model_dir, device=device))
        else:
            import httpx

            key = api_key or os.environ.get(API_KEY_ENV)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def score_rows(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """One reward per row, in order."""
        out: list[float] = []
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = list(rows[start : start + CHUNK_ROWS])
            out += self._local(chunk) if self._scorer is not None else self._post(chunk)
        return out

    def _local(self, rows: list[dict[str, Any]]) -> list[float]:
        from rmdata.serve.bodies import score_rows

        assert self._scorer is not None
        checked = score_rows({"rows": rows}, len(rows))
        return self._scorer.score(self._scorer.encode_rows(checked.prompts, checked.responses).tokens).tolist()

    def _post(self, rows: list[dict[str, Any]]) -> list[float]:
        """POST /score, waiting out 503s (Retry-After) and dropped connections up to ``retries`` times."""
        import httpx

        assert self._http is not None
        for attempt in range(self.retries + 1):
            try:
                answer = self._http.post("/score", json={"rows": rows})
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(min(2.0**attempt, 30.0))
                continue
            if answer.status_code == 503 and attempt < self.retries:
                time.sleep(float(answer.headers.get("retry-after", "1")))
                continue
            if answer.status_code != 200:
                raise RuntimeError(f"{self.url}/score answered {answer.status_code}: {answer.text[:500]}")
            rewards: list[float] = answer.json()["rewards"]
            return rewards
        raise AssertionError("unreachable")


def trl_row(prompt: Any, completion: Any) -> dict[str, Any]:
    """A TRL (prompt, completion) pair as a /score row: plain strings, or conversations."""
    if isinstance(completion, list):
        lead = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return {"messages": [*lead, *completion]}
    return {"prompt": prompt, "response": completion}


class TRLReward:
    """A TRL ``reward_funcs`` entry: ``(prompts, completions, **kwargs) -> list[float]``."""

    __name__ = "rmdata_reward"  # TRL logs each reward function under its __name__

    def __init__(self, url: str | None = None, **client: Any) -> None:
        self.client = RewardClient(url, **client)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        return self.client.score_rows([trl_row(p, c) for p, c in zip(prompts, completions, strict=True)])


@cache
def _client(url: str | None, api_key: str | None, model_dir: str | None) -> RewardClient:
    """One client per setting for the process: verl calls its reward function once per sample."""
    return RewardClient(url, api_key=api_key, model_dir=model_dir)


def verl_compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[dict[str, Any] | None],
    *,
    url: str | None = None,
    api_key: str | None = None,
    model_dir: str | None = None,
    prompt_key: str = "prompt",
    **kwargs: Any,
) -> list[float]:
    """verl's batch reward manager hook: one reward per response, its prompt read from ``extra_info``."""
    rows = [
        {"prompt": _verl_prompt(info, prompt_key, i), "response": response}
        for i, (response, info) in enumerate(zip(solution_strs, extra_infos, strict=True))
    ]
    return _client(url, api_key, model_dir).score_rows(rows)


def verl_compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """verl's naive reward manager hook (``custom_reward_function.name=verl_compute_score``)."""
    return verl_compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **kwargs)[0]


def _verl_prompt(info: dict[str, Any] | None, key: str, index: int) -> Any:
    for name in (key, "question"):
        if info and info.get(name) is not None:
            return info[name]
    raise ValueError(
        f"sample {index}: extra_info has no {key!r} (or 'question'); verl passes only the response to a reward "
        "function, so put the prompt (a string or messages) in extra_info when preparing the dataset"
    )
