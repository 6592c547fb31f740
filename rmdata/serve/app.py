"""The HTTP API (a Starlette app, run by uvicorn): the endpoints, the limits and the answers to bad requests.

- ``POST /get_reward``: OpenRLHF's ``{"query": [...], "prompts": [...], "labels": [...]}`` ->
  ``{"rewards": [...], "scores": [...], "extra_logs": {"num_tokens": [...], "truncated": [...]}}``
  (``rmdata.serve.queries`` turns each query into the text ``rmdata score`` would tokenize).
- ``POST /score``: structured rows -> ``{"rewards", "num_tokens", "truncated"}`` in row order.
- ``POST /best_of_n``: a prompt and candidates -> the scores, the best (lowest index among equal maxima), every
  index tied for best, and the ranking (competition ranks: equal scores share a rank).
- ``GET /health``: 200 ``{"status": "ready"}`` once the model is loaded and a warm-up forward ran, else 503.
- ``GET /metrics``: Prometheus text (``rmdata.serve.metrics``).

Every refusal is one JSON object ``{"error": "...", "field": "..." | null}``: 400 malformed JSON, 401 a missing
or wrong bearer token, 408 a body slower than ``body_timeout_s``, 413 over ``max_request_bytes`` or
``max_request_rows``, 422 a field breaking a rule, 503 (``Retry-After``) while warming up or when the queue is
full. An unexpected failure is logged with its traceback and answered 500 without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rmdata.errors import RmdataError
from rmdata.serve.batcher import MicroBatcher, QueueFull
from rmdata.serve.bodies import RequestError, Rows, best_of_n, parse_object, reward_queries, score_rows
from rmdata.serve.config import ServeConfig
from rmdata.serve.metrics import Metrics
from rmdata.serve.scorer import Scorer

log = logging.getLogger("rmdata.serve")
RETRY_AFTER_S = 1
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def json_response(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson: float32 rewards written as the shortest text that reads back the same float; NaN as null."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


class Service:
    """The loaded scorer, its batcher and metrics: what every endpoint shares."""

    def __init__(self, scorer: Scorer, cfg: ServeConfig) -> None:
        self.scorer, self.cfg = scorer, cfg
        self.metrics = Metrics()
        self.batcher = MicroBatcher(
            scorer.score,
            batch_tokens=scorer.batch_tokens,
            max_wait_ms=cfg.max_wait_ms,
            max_queue_rows=cfg.max_queue_rows,
            on_batch=self.metrics.batch,
        )
        self.ready = False

    async def rewards(self, encode: Callable[[], Any]) -> tuple[np.ndarray, Any]:
        """Encode off the event loop, score through the batcher; the rewards and the encoded sequences."""
        self.batcher.check_room()  # a flood is refused before it costs any tokenizing
        with self.batcher.incoming():
            seqs = await asyncio.to_thread(encode)
        rewards = await self.batcher.submit(seqs.tokens)
        self.metrics.rows += len(seqs.tokens)
        self.metrics.tokens += int(seqs.lengths.sum())
        self.metrics.truncated += int(seqs.truncated.sum())
        return rewards, seqs

    async def get_reward(self, body: dict[str, Any]) -> dict[str, Any]:
        queries, prompts = reward_queries(body, self.cfg.max_request_rows)
        rule = self.scorer.query_rule
        canonical = [rule.canonical(q, prompts[i] if prompts else None) for i, q in enumerate(queries)]
        self.metrics.unmatched_queries += sum(not c.matched for c in canonical)
        rewards, seqs = await self.rewards(lambda: self.scorer.encode_texts([c.text for c in canonical]))
        values = rewards.tolist()
        return {
            "rewards": values,
            "scores": values,
            "extra_logs": {
                "num_tokens": seqs.lengths.tolist(),
                "truncated": seqs.truncated.astype(np.float64).tolist(),
            },
        }

    async def score(self, body: dict[str, Any]) -> dict[str, Any]:
        rows = score_rows(body, self.cfg.max_request_rows)
        rewards, seqs = await self._rows(rows)
        return {"rewards": rewards.tolist(), "num_tokens": seqs.lengths.tolist(), "truncated": seqs.truncated.tolist()}

    async def best_of_n(self, body: dict[str, Any]) -> dict[str, Any]:
        rows, n = best_of_n(body, self.cfg.max_request_rows)
        rewards, _ = await self._rows(rows)
        return rank(rewards, n)

    async def _rows(self, rows: Rows) -> tuple[np.ndarray, Any]:
        return await self.rewards(lambda: self.scorer.encode_rows(rows.prompts, rows.responses))


def rank(rewards: np.ndarray, n: int | None) -> dict[str, Any]:
    """Scores, the best index, the indices tied for best, and the top ``n`` (all) by score then index."""
    scores = rewards.tolist()
    order = sorted(range(len(scores)), key=lambda i: (-_key(scores[i]), i))
    ranking, rank_of = [], 0
    for position, i in enumerate(order):
        if position == 0 or scores[i] != scores[order[position - 1]]:
            rank_of = position + 1
        ranking.append({"index": i, "score": scores[i], "rank": rank_of})
    best = order[0]
    tied = sorted(i for i in order if scores[i] == scores[best])
    return {"scores": scores, "best": best, "best_score": scores[best], "tied_best": tied, "ranking": ranking[:n]}


def _key(score: float) -> float:
    return float("-inf") if score != score else score  # NaN ranks last


def build_app(scorer: Scorer, cfg: ServeConfig) -> Starlette:
    """The app for ``scorer``; its lifespan starts the batcher, warms the model up, and drains on shutdown."""
    service = Service(scorer, cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.batcher.start()
        warm = asyncio.create_task(_warm_up(service))
        try:
            yield
        finally:
            warm.cancel()
            await service.batcher.close()

    def post(handler: Handler, endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            return await _answer(service, request, endpoint, handler)

        return route

    async def health(request: Request) -> Response:
        if service.ready:
            return json_response({"status": "ready", "model": str(scorer.model.path), "rule": scorer.model.rule})
        return json_response({"status": "warming_up"}, 503, {"Retry-After": str(RETRY_AFTER_S)})

    async def metrics(request: Request) -> Response:
        if (refused := _auth(request, cfg.api_key)) is not None:
            return json_response(refused.to_json(), refused.status, _auth_headers(refused))
        text = service.metrics.render(
            queue_rows=service.batcher.queued_rows,
            queue_requests=service.batcher.queued_requests,
            running_rows=service.batcher.running_rows,
            ready=service.ready,
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    routes = [
        Route("/get_reward", post(service.get_reward, "get_reward"), methods=["POST"]),
        Route("/score", post(service.score, "score"), methods=["POST"]),
        Route("/best_of_n", post(service.best_of_n, "best_of_n"), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


async def _warm_up(service: Service) -> None:
    reward = await asyncio.to_thread(service.scorer.warm_up)
    service.ready = True
    log.info("rmdata serve: ready (warm-up reward %.4f)", reward)


async def _answer(service: Service, request: Request, endpoint: str, handler: Handler) -> Response:
    """One POST: auth, readiness, the body within its limits, the handler; every failure is a JSON answer."""
    start = time.perf_counter()
    headers: dict[str, str] | None = None
    try:
        if (refused := _auth(request, service.cfg.api_key)) is not None:
            raise refused
        if not service.ready:
            raise _unavailable("the model is warming up; retry shortly")
        body = await _read_body(request, service.cfg)
        response = json_response(await handler(parse_object(body)))
    except RequestError as err:
        headers = _auth_headers(err) or ({"Retry-After": str(RETRY_AFTER_S)} if err.status == 503 else None)
        response = json_response(err.to_json(), err.status, headers)
    except QueueFull as err:
        response = json_response(
            {"error": f"the server is busy: {err}; retry later", "field": None},
            503,
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    except RmdataError as err:  # a chat template that cannot render a row, and the like
        response = json_response({"error": str(err), "field": None}, 422)
    except ClientDisconnect:
        response = Response(status_code=499)  # nobody is listening; counted, not sent
    except Exception:
        log.exception("rmdata serve: %s failed", endpoint)
        response = json_response({"error": "internal error (logged by the server)", "field": None}, 500)
    service.metrics.request(endpoint, response.status_code, time.perf_counter() - start)
    return response


async def _read_body(request: Request, cfg: ServeConfig) -> bytes:
    """The body, refused with 413 past ``max_request_bytes`` and 408 when slower than ``body_timeout_s``."""
    limit = cfg.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), cfg.body_timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(
            408, None, f"the body took over {cfg.body_timeout_s:g} s to arrive (--body-timeout-s)"
        ) from None


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(413, None, f"the body has {size} bytes or more, over --max-request-bytes {limit}; split it")


def _unavailable(message: str) -> RequestError:
    return RequestError(503, None, message)


def _auth(request: Request, api_key: str | None) -> RequestError | None:
    if not api_key:
        return None
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode()):
        return None
    what = "a wrong bearer token" if given else "no Authorization header"
    return RequestError(401, "Authorization", f"{what}; send Authorization: Bearer <the server's --api-key>")


def _auth_headers(err: RequestError) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
