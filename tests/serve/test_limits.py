"""Hostile and broken requests get one JSON 4xx naming the field or the limit; a full queue gets 503; never a 500."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest

from rmdata.serve.config import ServeConfig
from rmdata.serve.scorer import Scorer
from rmdata.serve.server import with_api_key
from tests.serve.live import live_server

LIMITS = {"max_request_rows": 4, "max_request_bytes": 4096, "body_timeout_s": 1.0, "api_key": "s3cret"}
AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def url(scorer: Scorer) -> object:
    with live_server(scorer, **LIMITS) as base:
        yield base


ROW = {"prompt": "Hi", "response": "Hello"}
BAD = [
    ("/score", b"{not json", 400, None, "not valid JSON"),
    ("/score", b"[1, 2]", 422, None, "must be a JSON object"),
    ("/score", {"rows": []}, 422, "rows", "non-empty list"),
    ("/score", {"rows": [ROW, 3]}, 422, "rows[1]", "must be an object"),
    ("/score", {"prompt": 5, "response": "x"}, 422, "prompt", "must be a string or a list of messages"),
    ("/score", {"prompt": "Hi", "response": ["x"]}, 422, "response", "must be a string"),
    ("/score", {"prompt": "Hi"}, 422, "response", "needs response"),
    ("/score", {"prompt": [{"role": "bot", "content": "x"}], "response": "x"}, 422, "prompt[0].role", "must be one of"),
    ("/score", {"messages": [{"role": "user", "content": "x"}]}, 422, "messages[0].role", "ends with the assistant"),
    ("/score", {"rows": [ROW] * 5}, 413, None, "--max-request-rows 4"),
    ("/get_reward", {"query": "text"}, 422, "query", "non-empty list of strings"),
    ("/get_reward", {"query": ["a", None]}, 422, "query[1]", "must be a string"),
    ("/get_reward", {"query": ["a"], "prompts": ["a", "b"]}, 422, "prompts", "one each"),
    ("/best_of_n", {"prompt": "Hi", "responses": []}, 422, "responses", "non-empty list"),
    ("/best_of_n", {"prompt": "Hi", "responses": ["a"], "n": 0}, 422, "n", "positive integer"),
    ("/score", {"prompt": "x" * 5000, "response": "y"}, 413, None, "--max-request-bytes 4096"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "message"), BAD, ids=[f"{b[0]}-{b[2]}-{b[4]}" for b in BAD]
)
def test_bad_requests_get_one_json_error_naming_the_field(
    url: str, path: str, body: object, status: int, field: str | None, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(f"{url}{path}", content=content, headers={**AUTH, "content-type": "application/json"})
    assert answer.status_code == status
    error = answer.json()
    assert set(error) == {"error", "field"} and error["field"] == field and message in error["error"]
    assert "Traceback" not in answer.text


def test_a_wrong_or_missing_key_gets_401_and_health_stays_open(url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}):
        answer = httpx.post(f"{url}/score", json=ROW, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["field"] == "Authorization"
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.post(f"{url}/score", json=ROW, headers=AUTH).status_code == 200


def test_the_key_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMDATA_SERVE_API_KEY", "from-env")
    assert with_api_key(ServeConfig()).api_key == "from-env"
    assert with_api_key(ServeConfig(api_key="given")).api_key == "given"
    assert ServeConfig().host == "127.0.0.1"  # local clients only by default


def _raw_post(port: int, body: bytes, *, send: int) -> socket.socket:
    """A POST whose headers promise ``body`` but that sends only its first ``send`` bytes."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = "POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:send])
    return sock


def _read_answer(sock: socket.socket) -> bytes:
    """Bytes up to the end of a JSON answer (our error bodies are one object)."""
    sock.settimeout(30)
    data = b""
    while not (b"\r\n\r\n" in data and data.rstrip().endswith(b"}")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_slow_body_gets_408_while_others_are_answered(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    slow = _raw_post(port, json.dumps(ROW).encode(), send=5)
    assert httpx.post(f"{url}/score", json=ROW, headers=AUTH).status_code == 200  # not blocked by the slow one
    answer = _read_answer(slow)
    slow.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout-s" in answer


@dataclass
class GatedScorer(Scorer):
    """Holds every batch after the first (the warm-up) until ``gate`` opens."""

    gate: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def score(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        if self.calls > 1:
            self.gate.wait(30)
        return super().score(tokens)


def test_a_full_queue_gets_503_with_retry_after_and_the_queued_are_answered(scorer: Scorer) -> None:
    gated = GatedScorer(scorer.model, scorer.max_length, scorer.batch_tokens, scorer.query_rule)

    async def flood(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            busy = asyncio.ensure_future(client.post("/score", json=ROW))  # held in the model
            await asyncio.sleep(0.3)
            queued = [asyncio.ensure_future(client.post("/score", json={"rows": [ROW, ROW]})) for _ in range(2)]
            await asyncio.sleep(0.3)
            refused = await client.post("/score", json=ROW)
            gated.gate.set()
            return [refused, await busy, *(await asyncio.gather(*queued))]

    with live_server(gated, max_queue_rows=4, max_wait_ms=0) as base:
        refused, *answered = asyncio.run(flood(base))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "--max-queue-rows 4" in refused.json()["error"]
    assert [a.status_code for a in answered] == [200, 200, 200]
    assert answered[1].json()["rewards"] == answered[0].json()["rewards"] * 2


def test_clients_killed_mid_request_leave_the_server_answering(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"rows": [ROW] * 4}).encode()
    for send in (len(body), 7):  # killed after sending everything (waiting for its answer), and mid-body
        for _ in range(5):
            _raw_post(port, body, send=send).close()
    for raw in (b'{"query": ["\\ud800"]}', b"[" * 1500 + b"]" * 1500, b"\xff\xfe"):
        answer = httpx.post(f"{url}/get_reward", content=raw, headers=AUTH)
        assert answer.status_code in (400, 422) and "Traceback" not in answer.text
    assert httpx.post(f"{url}/score", json=ROW, headers=AUTH).status_code == 200
    metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert 'status="500"' not in metrics


def test_connections_past_the_limit_get_503_and_the_server_recovers(scorer: Scorer) -> None:
    with live_server(scorer, max_connections=3) as base:
        port = int(base.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # slowloris: connect, send nothing
        assert _poll_status(base, 503) == 503
        for sock in idle:
            sock.close()
        assert _poll_status(base, 200) == 200


def _poll_status(base: str, want: int) -> int:
    """The status of /score requests, polled until it is ``want`` (the server registers connections as it can)."""
    status = 0
    for _ in range(100):
        status = httpx.post(f"{base}/score", json=ROW).status_code
        if status == want:
            break
        time.sleep(0.1)
    return status


@dataclass
class SlowWarmUp(Scorer):
    """A scorer whose warm-up forward waits for ``gate``."""

    gate: threading.Event = field(default_factory=threading.Event)

    def warm_up(self) -> float:
        self.gate.wait(30)
        return super().warm_up()


def test_not_ready_until_the_warm_up_forward_ran(scorer: Scorer) -> None:
    slow = SlowWarmUp(scorer.model, scorer.max_length, scorer.batch_tokens, scorer.query_rule)
    with live_server(slow, ready=False) as base:
        health = httpx.get(f"{base}/health")
        refused = httpx.post(f"{base}/score", json=ROW)
        slow.gate.set()
        assert health.status_code == 503 and health.json() == {"status": "warming_up"}
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "warming up" in refused.json()["error"]
        assert _poll_status(base, 200) == 200
