"""The options of ``rmdata serve``: one dataclass, each field documented once; the CLI help is read from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from rmdata.score.config import DEFAULT_MODEL

API_KEY_ENV = "RMDATA_SERVE_API_KEY"  # read when --api-key is not given


def _opt(default: Any, help: str) -> Any:
    """A field with its help text (typed Any so each field keeps its own annotation)."""
    return field(default=default, metadata={"help": help})


@dataclass
class ServeConfig:
    """Everything a server depends on: the model, the batching and the limits."""

    model: str = _opt(
        DEFAULT_MODEL,
        "Reward model directory, as for `rmdata score`: an rmdata export, a Hugging Face "
        "*ForSequenceClassification with num_labels=1 (safetensors), or InternLM2-Reward.",
    )
    host: str = _opt("127.0.0.1", "Address to bind; the default accepts local clients only (0.0.0.0: every interface).")
    port: int = _opt(5000, "TCP port (OpenRLHF's serve_rm default).")
    device: str = _opt("auto", "auto (CUDA when available), cpu, cuda or cuda:N (one server per GPU).")
    dtype: str = _opt("auto", "auto (bfloat16 on CUDA, float32 on CPU), float32 or bfloat16.")
    trust_remote_code: bool = _opt(False, "Allow a model directory's own Python code (auto_map) to run.")
    max_length: int | None = _opt(
        None,
        "Longest sequence in tokens (default: the model's context); longer rows lose tokens from the left, "
        "as in `rmdata score`, and come back with truncated=true.",
    )
    batch_tokens: int | None = _opt(
        None, "Tokens per forward pass (default: 1024 on CPU, 16384 on CUDA); requests are merged up to it."
    )
    max_wait_ms: float = _opt(
        2.0,
        "How long a short batch waits for requests still being tokenized to join it (a lone request never waits).",
    )
    max_queue_rows: int = _opt(8192, "Rows waiting for the model before new requests get 503 with Retry-After.")
    max_request_rows: int = _opt(1024, "Rows (queries, responses) in one request; more get 413.")
    max_request_bytes: int = _opt(8 * 1024 * 1024, "Bytes of one request body; more get 413.")
    max_connections: int = _opt(
        512, "Open connections (idle and slow ones included) past which new requests get 503 (uvicorn's limit)."
    )
    body_timeout_s: float = _opt(30.0, "Seconds a client may take to send its request body; slower ones get 408.")
    drain_timeout_s: float = _opt(60.0, "On SIGTERM, seconds to let in-flight requests finish before exiting.")
    api_key: str | None = _opt(
        None, f"Require `Authorization: Bearer KEY` on every endpoint but /health (default: ${API_KEY_ENV} if set)."
    )


HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(ServeConfig)}
