"""`rmdata serve`: the reward model over HTTP (OpenRLHF's /get_reward, /score, /best_of_n, /health, /metrics)."""

from __future__ import annotations

from typing import Annotated

import typer

from rmdata.cli.app import app, quiet_transformers
from rmdata.serve.config import HELP
from rmdata.serve.config import ServeConfig as _ServeDefaults

_D = _ServeDefaults()


@app.command()
def serve(
    model: Annotated[str, typer.Option("--model", "-m", help=HELP["model"])] = _D.model,
    host: Annotated[str, typer.Option("--host", help=HELP["host"])] = _D.host,
    port: Annotated[int, typer.Option("--port", help=HELP["port"])] = _D.port,
    device: Annotated[str, typer.Option("--device", help=HELP["device"])] = _D.device,
    dtype: Annotated[str, typer.Option("--dtype", help=HELP["dtype"])] = _D.dtype,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help=HELP["trust_remote_code"])] = False,
    max_length: Annotated[int | None, typer.Option("--max-length", show_default=False, help=HELP["max_length"])] = None,
    batch_tokens: Annotated[
        int | None, typer.Option("--batch-tokens", show_default=False, help=HELP["batch_tokens"])
    ] = None,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help=HELP["max_wait_ms"])] = _D.max_wait_ms,
    max_queue_rows: Annotated[int, typer.Option("--max-queue-rows", help=HELP["max_queue_rows"])] = _D.max_queue_rows,
    max_request_rows: Annotated[
        int, typer.Option("--max-request-rows", help=HELP["max_request_rows"])
    ] = _D.max_request_rows,
    max_request_bytes: Annotated[
        int, typer.Option("--max-request-bytes", help=HELP["max_request_bytes"])
    ] = _D.max_request_bytes,
    max_connections: Annotated[
        int, typer.Option("--max-connections", help=HELP["max_connections"])
    ] = _D.max_connections,
    body_timeout_s: Annotated[float, typer.Option("--body-timeout-s", help=HELP["body_timeout_s"])] = _D.body_timeout_s,
    drain_timeout_s: Annotated[
        float, typer.Option("--drain-timeout-s", help=HELP["drain_timeout_s"])
    ] = _D.drain_timeout_s,
    api_key: Annotated[str | None, typer.Option("--api-key", show_default=False, help=HELP["api_key"])] = None,
) -> None:
    r"""Serve a reward model over HTTP for RL loops and best-of-N (`pip install 'rmdata\[serve]'`).

    Concurrent requests are batched together; each reward equals what `rmdata score` writes for the same row.
    Endpoints: POST /get_reward (OpenRLHF --remote_rm_url), /score, /best_of_n; GET /health, /metrics.
    """
    from rmdata.serve.config import ServeConfig
    from rmdata.serve.server import serve as run_server

    quiet_transformers()
    run_server(
        ServeConfig(
            model=model,
            host=host,
            port=port,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            max_length=max_length,
            batch_tokens=batch_tokens,
            max_wait_ms=max_wait_ms,
            max_queue_rows=max_queue_rows,
            max_request_rows=max_request_rows,
            max_request_bytes=max_request_bytes,
            max_connections=max_connections,
            body_timeout_s=body_timeout_s,
            drain_timeout_s=drain_timeout_s,
            api_key=api_key,
        )
    )
