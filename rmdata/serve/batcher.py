"""Continuous batching: requests queued by the event loop, merged into token-budget batches, one model worker.

Each request's token sequences become one :class:`Job` with a future. A single worker task takes the oldest job
as soon as the model is free, adds every job already waiting up to ``batch_tokens`` tokens, and, when the batch
is still short of the budget while other requests are on their way (:meth:`MicroBatcher.incoming`: read and
being tokenized), waits at most ``max_wait_ms`` (counted from the oldest job's arrival) for them.
The merged batch runs in one thread (``score``, blocking); each job's future gets its own slice of the rewards.
Requests that arrive while the model runs wait in the queue and form the next batch, so under load batches fill
up without any added wait, and a lone request does not wait at all.

The queue is bounded in rows (``max_queue_rows``): :meth:`MicroBatcher.submit` raises :class:`QueueFull` instead
of queueing more, and the server answers 503 with ``Retry-After``. A job whose client went away (its future
cancelled) is dropped before it reaches the model. :meth:`MicroBatcher.close` lets the worker finish every
queued job, then stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

ScoreFn = Callable[[Sequence[np.ndarray]], np.ndarray]
BatchHook = Callable[[int, int], None]  # (rows, tokens) of each batch the model ran


class QueueFull(RuntimeError):
    """The queue holds ``max_queue_rows`` rows; the caller should retry later."""


@dataclass
class Job:
    tokens: Sequence[np.ndarray]
    future: asyncio.Future[np.ndarray]
    num_tokens: int
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """One worker task that merges queued jobs into batches for ``score`` (see the module docstring)."""

    def __init__(
        self,
        score: ScoreFn,
        *,
        batch_tokens: int,
        max_wait_ms: float,
        max_queue_rows: int,
        on_batch: BatchHook | None = None,
    ) -> None:
        self._score = score
        self.batch_tokens = batch_tokens
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.max_queue_rows = max_queue_rows
        self._on_batch = on_batch
        self._jobs: deque[Job] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmdata-model")
        self.queued_rows = 0
        self.running_rows = 0
        self._incoming = 0

    @property
    def queued_requests(self) -> int:
        return len(self._jobs)

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="rmdata-batcher")

    @contextlib.contextmanager
    def incoming(self) -> Iterator[None]:
        """Marks a request on its way to :meth:`submit` (being tokenized): a short batch waits for it."""
        self._incoming += 1
        try:
            yield
        finally:
            self._incoming -= 1
            if self._wake is not None:
                self._wake.set()

    def check_room(self, rows: int = 1) -> None:
        """QueueFull unless ``rows`` more rows may be queued now (an empty queue takes any request)."""
        if self._closing or self._worker is None:
            raise QueueFull("the server is shutting down")
        if self.queued_rows + rows > self.max_queue_rows and self.queued_rows > 0:
            raise QueueFull(f"{self.queued_rows} rows are queued (--max-queue-rows {self.max_queue_rows})")

    async def submit(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        """Rewards of ``tokens`` (index-aligned), once a batch holding them ran; QueueFull when the queue is full."""
        self.check_room(len(tokens))
        assert self._wake is not None
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._jobs.append(Job(tokens, future, sum(len(t) for t in tokens)))
        self.queued_rows += len(tokens)
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Score every queued job, then stop the worker and its thread."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._collect()
            if not batch:
                continue
            tokens = [t for job in batch for t in job.tokens]
            self.running_rows = len(tokens)
            try:
                rewards = await loop.run_in_executor(self._executor, self._score, tokens)
            except Exception as err:  # the model failed: every request of the batch gets the error
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            finally:
                self.running_rows = 0
            if self._on_batch is not None:
                self._on_batch(len(tokens), sum(job.num_tokens for job in batch))
            start = 0
            for job in batch:
                if not job.future.done():
                    job.future.set_result(rewards[start : start + len(job.tokens)])
                start += len(job.tokens)

    async def _collect(self) -> list[Job]:
        """The oldest live jobs up to the token budget, waiting up to ``max_wait_s`` for a short batch to fill."""
        assert self._wake is not None
        batch: list[Job] = []
        tokens = 0
        deadline = self._jobs[0].arrived + self.max_wait_s
        while True:
            while self._jobs and (not batch or tokens + self._jobs[0].num_tokens <= self.batch_tokens):
                job = self._jobs.popleft()
                self.queued_rows -= len(job.tokens)
                if job.future.done():  # cancelled: its client went away
                    continue
                batch.append(job)
                tokens += job.num_tokens
            full = bool(self._jobs) or tokens >= self.batch_tokens
            remaining = deadline - time.monotonic()
            if full or remaining <= 0 or self._closing or self._incoming == 0:
                return batch
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return batch
