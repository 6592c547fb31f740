"""Pass 1 of a large JSON lines file on several processes: each worker reads, parses and validates a span.

Decoding and checking each record is what pass 1 spends its time on, one CPU core's worth. A plain JSON
lines file of ``PARALLEL_MIN_BYTES`` or more is cut between lines into spans of about ``SPAN_BYTES``
(:func:`rmdata.data.jsonl.line_spans`, which reads only around the cuts). The parent reads the first spans
itself (format detection needs them); each later span goes to a worker process, which reads it, numbers
its lines from 1, runs :class:`rmdata.data.pass1.Pass1` with the detected format and hands back a
:class:`~rmdata.data.pass1.Part` and its line count. The parent merges the parts in input order, adding
the lines before each part to its drops' line numbers: the counts, errors, drops (in order) and carried
schema are those of one process reading everything (each span starts a batch; the schema merge does not
depend on where batches start).

At most ``2 x workers`` blocks are in flight, so memory stays bounded. Workers are their own Python
processes (``python -m rmdata.data.workers``, jobs and results as pickles over their stdin and stdout),
not ``multiprocessing`` ones: a spawned ``multiprocessing`` worker re-runs the caller's main script, and a
forked one inherits polars' thread pool, which does not survive a fork. Each costs a start-up of about a
second. Pass 1 stays in-process when it hands rows to the caller (``on_rows``) or counts duplicates: both
need every row in the parent. ``RMDATA_SCAN_WORKERS=1`` turns the pool off; by default it has one worker
per CPU this process may run on.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import IO, Any

from rmdata.data.batch import Batch
from rmdata.data.formats import FORMATS
from rmdata.data.inputs import COMPRESSIONS, InputInfo, file_kind
from rmdata.data.jsonl import line_spans, parse_block, read_span
from rmdata.data.pass1 import Part, Pass1
from rmdata.errors import RmdataError

PARALLEL_MIN_BYTES = 512 << 20  # a smaller input is read in-process (worker start-up would cost more)
SPAN_BYTES = 8 << 20  # bytes of lines per job
WORKERS_ENV = "RMDATA_SCAN_WORKERS"


def scan_workers(info: InputInfo, per_row: bool) -> int:
    """How many worker processes pass 1 gives this input: 0 (read in-process) unless it is one plain JSON
    lines file of at least PARALLEL_MIN_BYTES, ``per_row`` (rows handed to the caller, duplicate counting) is
    off, and more than one CPU is free to use."""
    if per_row or info.layout != "file" or len(info.files) != 1:
        return 0
    path = info.files[0]
    if file_kind(path) != "jsonl" or path.lower().endswith(COMPRESSIONS):
        return 0
    try:
        if os.path.getsize(path) < PARALLEL_MIN_BYTES:
            return 0
    except OSError:
        return 0
    wanted = os.environ.get(WORKERS_ENV, "").strip()
    if wanted:
        if not wanted.isdigit():
            raise RmdataError(f"{WORKERS_ENV}={wanted!r}: must be a whole number of processes (1: none)")
        count = int(wanted)
    else:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return count if count > 1 else 0


@dataclass
class Spans:
    """A file cut for the workers, after the parent read its first spans (``head``)."""

    path: str
    end: bytes
    head: list[Batch]
    line: int  # the number of the first line after the head
    rest: list[tuple[int, int]]


def head_spans(path: str, batch_size: int, sample: int) -> Spans:
    """Cut the file, and read spans in-process until they hold ``sample`` records (or the file ends)."""
    line, end, spans = line_spans(path, SPAN_BYTES)
    head: list[Batch] = []
    taken = 0
    while taken < len(spans) and sum(len(batch) for batch in head) < sample:
        start, stop = spans[taken]
        with open(path, "rb") as stream:
            stream.seek(start)
            data = stream.read(stop - start)
        head += parse_block(path, data, end, line, batch_size)
        line += data.count(end)
        taken += 1
    if not head:
        raise RmdataError(f"{path}: empty file, no records in it; remove it from the inputs")
    return Spans(path, end, head, line, spans[taken:])


def scan_spans(
    state: Pass1, spans: Spans, info: InputInfo, fmt_name: str, detected: bool, batch_size: int, workers: int
) -> int:
    """Run pass 1 over the spans after the head on ``workers`` processes, merging each span's Part into
    ``state`` in input order; returns the records read."""
    records = 0
    line = spans.line

    def merge() -> None:
        nonlocal records, line
        part = pool.next_result()
        state.merge(part, line_offset=line - 1)
        records += part.records
        line += part.lines

    with _Pool(workers) as pool:
        for start, stop in spans.rest:
            if pool.in_flight >= 2 * workers:
                merge()
            pool.submit((spans.path, start, stop, spans.end, fmt_name, info, detected, batch_size))
        while pool.in_flight:
            merge()
    return records


class _Pool:
    """Worker processes; job k goes to worker k % n, which answers its jobs in order, so results come in
    submission order. A writer thread per worker feeds its stdin, so the parent only ever waits on the
    oldest job's result, which its worker is computing or handing over."""

    def __init__(self, workers: int) -> None:
        import rmdata

        root = str(Path(rmdata.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "rmdata.data.workers"]
        self.procs = [subprocess.Popen(command, stdin=PIPE, stdout=PIPE, env=env) for _ in range(workers)]
        self.queues: list[queue.SimpleQueue[bytes | None]] = [queue.SimpleQueue() for _ in self.procs]
        pairs = zip(self.procs, self.queues, strict=True)
        self.threads = [threading.Thread(target=_feed, args=pair, daemon=True) for pair in pairs]
        for thread in self.threads:
            thread.start()
        self.sent = self.received = 0

    @property
    def in_flight(self) -> int:
        return self.sent - self.received

    def submit(self, job: tuple[Any, ...]) -> None:
        self.queues[self.sent % len(self.procs)].put(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        self.sent += 1

    def next_result(self) -> Part:
        proc = self.procs[self.received % len(self.procs)]
        self.received += 1
        assert proc.stdout is not None
        answer = _read_message(proc.stdout)
        if answer is None:
            raise RuntimeError(f"a pass-1 worker process ended unexpectedly (exit status {proc.poll()})")
        status, payload = pickle.loads(answer)
        if status != "ok":
            raise RuntimeError(f"in a pass-1 worker: {payload}")
        return payload

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        for jobs in self.queues:
            jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=10)
        for proc in self.procs:
            if exc[0] is not None and proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def _feed(proc: subprocess.Popen[bytes], jobs: queue.SimpleQueue[bytes | None]) -> None:
    """Writer thread: hand each pickled job to the worker; None closes its stdin (the worker then exits)."""
    assert proc.stdin is not None
    try:
        while (job := jobs.get()) is not None:
            proc.stdin.write(len(job).to_bytes(8, "little"))
            proc.stdin.write(job)
            proc.stdin.flush()
        proc.stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the worker died or the pool is closing: next_result reports it


def _read_message(stream: IO[bytes]) -> bytes | None:
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    data = stream.read(size)
    return data if len(data) == size else None


def check_span(
    path: str, start: int, stop: int, end: bytes, fmt_name: str, info: InputInfo, detected: bool, batch_size: int
) -> Part:
    """In a worker: pass 1 over one span, its lines numbered from 1."""
    fmt = FORMATS[fmt_name]
    batches, lines = read_span(path, start, stop, end, batch_size)
    state = Pass1(fmt.kind, None, dedup=False, count_duplicates=False, observe_only=True)
    for batch in batches:
        state.add(batch, fmt, info, detected, on_rows=None)
    return state.part(lines)


def serve() -> None:
    """A worker's main loop: read jobs from stdin, answer each with ``("ok", Part)`` or ``("error", text)``."""
    import traceback

    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed goes to stderr, never into the answers
    while (message := _read_message(jobs)) is not None:
        try:
            answer: tuple[str, Any] = ("ok", check_span(*pickle.loads(message)))
        except Exception as err:  # handed to the parent, which raises it naming the file
            answer = ("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(len(data).to_bytes(8, "little"))
        answers.write(data)
        answers.flush()


if __name__ == "__main__":
    serve()
