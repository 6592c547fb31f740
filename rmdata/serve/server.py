"""Start the server: check the extra, load the model, run uvicorn until SIGTERM/SIGINT, drain, exit.

uvicorn owns the signals: on SIGTERM it stops accepting connections, lets every in-flight request finish (up to
``drain_timeout_s``), then runs the app's shutdown, which scores whatever is still queued and stops the model
thread; the process then exits 0. One process serves one device; run one per GPU (``--device cuda:N``) behind
any HTTP load balancer.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import replace
from typing import TYPE_CHECKING

from rmdata.errors import RmdataError
from rmdata.serve.config import API_KEY_ENV, ServeConfig

if TYPE_CHECKING:
    import uvicorn

    from rmdata.serve.scorer import Scorer

INSTALL = "pip install 'rmdata[serve]'"


def require_serve_extra() -> None:
    """Refuse early, naming the extra to install, when uvicorn or starlette is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise RmdataError(f"rmdata serve needs uvicorn and starlette ({err.name} is missing): {INSTALL}") from err


def with_api_key(cfg: ServeConfig) -> ServeConfig:
    """``cfg`` with ``api_key`` taken from ``$RMDATA_SERVE_API_KEY`` when the option is not given."""
    return cfg if cfg.api_key else replace(cfg, api_key=os.environ.get(API_KEY_ENV) or None)


def uvicorn_server(scorer: Scorer, cfg: ServeConfig) -> uvicorn.Server:
    """A uvicorn server for ``scorer`` (not started): no access log, graceful drain on shutdown."""
    import uvicorn

    from rmdata.serve.app import build_app

    config = uvicorn.Config(
        build_app(scorer, cfg),
        host=cfg.host,
        port=cfg.port,
        log_level="info",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(cfg.drain_timeout_s)),  # uvicorn takes whole seconds
        limit_concurrency=cfg.max_connections,
    )
    return uvicorn.Server(config)


def serve(cfg: ServeConfig) -> None:
    """Load ``cfg.model`` (every refusal of ``rmdata score`` applies), bind, serve until a signal."""
    require_serve_extra()
    from rmdata.serve.scorer import Scorer

    cfg = with_api_key(cfg)
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api_key:
        logging.getLogger("rmdata.serve").warning(
            "rmdata serve: listening on %s without --api-key: anyone who can reach it can use the model", cfg.host
        )
    scorer = Scorer.load(cfg)
    server = uvicorn_server(scorer, cfg)
    # uvicorn re-raises the SIGTERM it drained on once it is done; with this handler in place, that re-raise is a
    # no-op and the process exits 0 after a clean drain (instead of dying by the signal).
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    except OSError as err:  # the port is taken, the address is not local, ...
        raise RmdataError(f"cannot listen on {cfg.host}:{cfg.port}: {err} (pick another --port or --host)") from err


def free_port(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a free loopback port (tests and benchmarks pass it to ``server.run(sockets=...)``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock
