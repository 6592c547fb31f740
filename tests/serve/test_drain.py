"""`rmdata serve` as a process: SIGTERM lets an in-flight request finish, then the process exits 0."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rmdata.serve.server import free_port
from tests.score.models import save_hf_reward_model
from tests.serve.test_limits import _raw_post, _read_answer


def test_sigterm_drains_the_in_flight_request_then_exits(tmp_path: Path) -> None:
    model = save_hf_reward_model(tmp_path / "rm")
    probe = free_port()
    port = probe.getsockname()[1]
    probe.close()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "RMDATA_SERVE_API_KEY": "s3cret"}
    command = [sys.executable, "-m", "rmdata", "serve", "--model", str(model), "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        body = json.dumps({"prompt": "Hi", "response": "Hello"}).encode()
        in_flight = _raw_post(port, body, send=10)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still draining: the request has not finished
        in_flight.sendall(body[10:])
        answer = _read_answer(in_flight)
        in_flight.close()
        assert answer.startswith(b"HTTP/1.1 200") and b'"rewards":[' in answer
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert "Traceback" not in log
