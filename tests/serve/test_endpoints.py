"""The endpoints on a real server: OpenRLHF's shapes, rmdata score's floats, best-of-N, health and metrics."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from rmdata.serve.scorer import Scorer
from rmdata.tokens.templates import render_conversation
from tests.serve.live import live_server


@pytest.fixture(scope="module")
def url(scorer: Scorer) -> object:
    with live_server(scorer, max_wait_ms=20) as base:
        yield base


def _f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


def test_get_reward_answers_openrlhf_queries_with_rmdata_score_floats(
    url: str, scorer: Scorer, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    tok = scorer.model.tokenizer
    prompts = [
        render_conversation(tok, [{"role": "user", "content": str(r["prompt"])}], add_generation_prompt=True)
        for r in rows
    ]
    queries = [p + f"{r['response']}<|im_end|><|endoftext|><|pad|>" for p, r in zip(prompts, rows, strict=True)]
    answer = httpx.post(f"{url}/get_reward", json={"query": queries, "prompts": prompts, "labels": [None] * len(rows)})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert _f32(body["rewards"]) == offline_rewards.tobytes() and body["scores"] == body["rewards"]
    assert set(body["extra_logs"]) == {"num_tokens", "truncated"} and len(body["extra_logs"]["num_tokens"]) == len(rows)


def test_score_takes_rows_responses_and_conversations(
    url: str, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    answer = httpx.post(
        f"{url}/score", json={"rows": [{"prompt": r["prompt"], "response": r["response"]} for r in rows]}
    )
    assert answer.status_code == 200 and _f32(answer.json()["rewards"]) == offline_rewards.tobytes()
    one = httpx.post(f"{url}/score", json={"prompt": rows[1]["prompt"], "responses": [rows[1]["response"]]}).json()
    conversation = [
        {"role": "user", "content": rows[1]["prompt"]},
        {"role": "assistant", "content": rows[1]["response"]},
    ]
    two = httpx.post(f"{url}/score", json={"messages": conversation}).json()
    assert _f32(one["rewards"]) == _f32(two["rewards"]) == offline_rewards[1:2].tobytes()
    assert one["truncated"] == [False] and one["num_tokens"][0] > 0


def test_best_of_n_ranks_with_explicit_ties(
    url: str, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    prompt = rows[0]["prompt"]
    same = [r for r in rows if r["prompt"] == prompt]
    candidates = [str(r["response"]) for r in same] + [str(same[0]["response"])]  # the last repeats the first
    answer = httpx.post(f"{url}/best_of_n", json={"prompt": prompt, "responses": candidates, "n": 2}).json()
    scores = answer["scores"]
    assert scores[-1] == scores[0] and answer["best"] == int(np.argmax(np.asarray(scores, dtype=np.float32)))
    assert answer["tied_best"] == [i for i, s in enumerate(scores) if s == max(scores)]
    assert len(answer["ranking"]) == 2 and answer["ranking"][0] == {
        "index": answer["best"],
        "score": max(scores),
        "rank": 1,
    }
    tie = httpx.post(f"{url}/best_of_n", json={"prompt": prompt, "responses": ["same", "same"]}).json()
    assert tie["best"] == 0 and tie["tied_best"] == [0, 1] and [r["rank"] for r in tie["ranking"]] == [1, 1]


def test_concurrent_clients_get_their_sequential_rewards(url: str, rows: list[dict[str, object]]) -> None:
    requests = [
        {"rows": [{"prompt": r["prompt"], "response": r["response"]} for r in rows[i : i + 1 + i % 4]]}
        for i in range(20)
    ]
    sequential = [httpx.post(f"{url}/score", json=r).json()["rewards"] for r in requests]

    async def together() -> list[list[float]]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            answers = await asyncio.gather(*(client.post("/score", json=r) for r in requests))
        return [a.json()["rewards"] for a in answers]

    assert asyncio.run(together()) == sequential
    metrics = httpx.get(f"{url}/metrics").text
    batches = [line for line in metrics.splitlines() if line.startswith("rmdata_serve_batch_rows_count")]
    served = [
        line
        for line in metrics.splitlines()
        if line.startswith('rmdata_serve_requests_total{endpoint="score",status="200"}')
    ]
    assert batches and served and int(batches[0].split()[-1]) < int(served[0].split()[-1])  # requests shared batches


def test_health_and_metrics(url: str) -> None:
    health = httpx.get(f"{url}/health")
    assert health.status_code == 200 and health.json()["status"] == "ready"
    text = httpx.get(f"{url}/metrics").text
    for name in (
        "requests_total",
        "rows_total",
        "tokens_total",
        "queue_rows",
        "request_seconds_bucket",
        "batch_tokens_sum",
    ):
        assert f"rmdata_serve_{name}" in text
    assert "# TYPE rmdata_serve_request_seconds histogram" in text
