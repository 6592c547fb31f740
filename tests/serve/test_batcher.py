"""Continuous batching: concurrent requests merged into batches get the rewards they get alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from rmdata.serve.batcher import MicroBatcher, QueueFull
from rmdata.serve.scorer import Scorer


def _tokens(scorer: Scorer, rows: list[dict[str, object]]) -> list[np.ndarray]:
    prompts = [[{"role": "user", "content": str(r["prompt"])}] for r in rows]
    return scorer.encode_rows(prompts, [str(r["response"]) for r in rows]).tokens


def test_concurrent_requests_get_their_sequential_rewards(scorer: Scorer, rows: list[dict[str, object]]) -> None:
    tokens = _tokens(scorer, rows)
    requests = [tokens[i : i + 1 + i % 3] for i in range(0, len(tokens), 2)]  # overlapping, 1-3 rows each
    sequential = [scorer.score(r) for r in requests]
    batches: list[tuple[int, int]] = []

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(
            scorer.score,
            batch_tokens=4096,
            max_wait_ms=50,
            max_queue_rows=1000,
            on_batch=lambda r, t: batches.append((r, t)),
        )
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.close()
        return results

    results = asyncio.run(main())
    for got, want in zip(results, sequential, strict=True):
        assert got.tobytes() == want.tobytes()
    assert len(batches) < len(requests)  # requests really shared batches
    assert sum(r for r, _ in batches) == sum(len(r) for r in requests)


def test_a_batch_stays_within_the_token_budget(scorer: Scorer, rows: list[dict[str, object]]) -> None:
    tokens = _tokens(scorer, rows)
    budget = 3 * max(len(t) for t in tokens)
    batches: list[tuple[int, int]] = []

    async def main() -> None:
        batcher = MicroBatcher(
            scorer.score,
            batch_tokens=budget,
            max_wait_ms=20,
            max_queue_rows=1000,
            on_batch=lambda r, t: batches.append((r, t)),
        )
        batcher.start()
        await asyncio.gather(*(batcher.submit([t]) for t in tokens))
        await batcher.close()

    asyncio.run(main())
    assert all(t <= budget for _, t in batches)
    assert sum(r for r, _ in batches) == len(tokens) and max(r for r, _ in batches) > 1


class _Gate:
    """A score function that blocks until released, to hold the model busy while the queue fills."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[int] = []

    def __call__(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        self.release.wait(10)
        self.calls.append(len(tokens))
        return np.arange(len(tokens), dtype=np.float32)


def test_a_full_queue_refuses_and_cancelled_jobs_never_reach_the_model() -> None:
    gate = _Gate()
    row = [np.zeros(4, dtype=np.int64)]

    async def main() -> tuple[list[object], int]:
        batcher = MicroBatcher(gate, batch_tokens=8, max_wait_ms=0, max_queue_rows=3, on_batch=None)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(row))  # taken by the worker, blocks in the gate
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit(row)) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="max-queue-rows 3"):
            await batcher.submit(row)
        depth = batcher.queued_rows
        queued[0].cancel()  # its client went away
        gate.release.set()
        results = await asyncio.gather(first, *queued[1:])
        await batcher.close()
        return results, depth

    results, depth = asyncio.run(main())
    assert depth == 3
    assert [r.tolist() for r in results] == [[0.0], [0.0], [1.0]]  # type: ignore[attr-defined]
    assert gate.calls == [1, 2]  # the cancelled job was dropped before the model


def test_close_scores_what_is_queued_then_refuses() -> None:
    gate = _Gate()
    gate.release.set()

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(gate, batch_tokens=1000, max_wait_ms=0, max_queue_rows=100)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([np.zeros(3, dtype=np.int64)])) for _ in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        with pytest.raises(QueueFull, match="shutting down"):
            await batcher.submit([np.zeros(3, dtype=np.int64)])
        return [p.result() for p in pending]

    assert len(asyncio.run(main())) == 5


def test_a_short_batch_waits_only_for_requests_on_their_way() -> None:
    gate = _Gate()
    gate.release.set()
    row = [np.zeros(3, dtype=np.int64)]

    async def main() -> None:
        batcher = MicroBatcher(gate, batch_tokens=1000, max_wait_ms=60_000, max_queue_rows=100)
        batcher.start()
        await asyncio.wait_for(batcher.submit(row), 30)  # alone: scored at once, not after 60 s
        assert gate.calls == [1]

        async def late() -> np.ndarray:
            with batcher.incoming():  # being tokenized
                await asyncio.sleep(0.2)
            return await batcher.submit(row)

        second = asyncio.ensure_future(late())
        await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(batcher.submit(row), second), 30)
        assert gate.calls == [1, 2]  # the queued row waited for the one on its way
        await batcher.close()

    asyncio.run(main())
