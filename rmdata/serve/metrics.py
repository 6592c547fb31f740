"""The server's counters and histograms, rendered in the Prometheus text format (version 0.0.4) for ``/metrics``."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
BATCH_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
BATCH_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
PREFIX = "rmdata_serve"


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        """Cumulative ``_bucket`` lines, ``+Inf`` included, then ``_sum`` and ``_count``."""
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        suffix = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{suffix} {self.total:.6f}", f"{name}_count{suffix} {self.count}"]
        return out


@dataclass
class Metrics:
    """What ``/metrics`` reports; the app updates it on the event loop thread only."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # (endpoint, status)
    rows: int = 0
    tokens: int = 0
    truncated: int = 0
    unmatched_queries: int = 0  # /get_reward queries in which no prompt or template header was found
    latency: dict[str, Histogram] = field(default_factory=dict)
    batch_rows: Histogram = field(default_factory=lambda: Histogram(BATCH_ROW_BUCKETS))
    batch_tokens: Histogram = field(default_factory=lambda: Histogram(BATCH_TOKEN_BUCKETS))

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, status)] += 1
        self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, rows: int, tokens: int) -> None:
        self.batch_rows.observe(rows)
        self.batch_tokens.observe(tokens)

    def render(self, *, queue_rows: int, queue_requests: int, running_rows: int, ready: bool) -> str:
        p = PREFIX
        out = [
            f"# HELP {p}_requests_total Requests answered, by endpoint and HTTP status.",
            f"# TYPE {p}_requests_total counter",
        ]
        out += [f'{p}_requests_total{{endpoint="{e}",status="{s}"}} {n}' for (e, s), n in sorted(self.requests.items())]
        for name, value, kind, text in (
            ("rows_total", self.rows, "counter", "Rows scored."),
            ("tokens_total", self.tokens, "counter", "Tokens scored (reward token included)."),
            ("truncated_rows_total", self.truncated, "counter", "Rows cut from the left to --max-length."),
            (
                "unmatched_queries_total",
                self.unmatched_queries,
                "counter",
                "Queries scored as sent: no prompt or template header found.",
            ),
            ("queue_rows", queue_rows, "gauge", "Rows waiting for the model."),
            ("queue_requests", queue_requests, "gauge", "Requests waiting for the model."),
            ("running_rows", running_rows, "gauge", "Rows in the batch the model is running."),
            ("ready", int(ready), "gauge", "1 once the model is loaded and warmed up."),
        ):
            out += [f"# HELP {p}_{name} {text}", f"# TYPE {p}_{name} {kind}", f"{p}_{name} {value}"]
        out += [f"# HELP {p}_request_seconds Request latency, by endpoint.", f"# TYPE {p}_request_seconds histogram"]
        for endpoint, hist in sorted(self.latency.items()):
            out += hist.lines(f"{p}_request_seconds", f'endpoint="{endpoint}"')
        out += [f"# HELP {p}_batch_rows Rows per model batch.", f"# TYPE {p}_batch_rows histogram"]
        out += self.batch_rows.lines(f"{p}_batch_rows")
        out += [f"# HELP {p}_batch_tokens Tokens per model batch.", f"# TYPE {p}_batch_tokens histogram"]
        out += self.batch_tokens.lines(f"{p}_batch_tokens")
        return "\n".join(out) + "\n"
