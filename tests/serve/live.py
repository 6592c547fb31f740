"""A real uvicorn server on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx

from rmdata.serve.config import ServeConfig
from rmdata.serve.scorer import Scorer
from rmdata.serve.server import free_port, uvicorn_server


@contextlib.contextmanager
def live_server(scorer: Scorer, *, ready: bool = True, **options: object) -> Iterator[str]:
    """Serve ``scorer`` with ``ServeConfig(**options)``; yields the base URL once /health answers (200 when
    ``ready``, any status otherwise)."""
    sock = free_port()
    cfg = ServeConfig(**options)  # type: ignore[arg-type]
    server = uvicorn_server(scorer, cfg)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200 or not ready:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not become ready in 60 s")
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
