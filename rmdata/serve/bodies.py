"""Request bodies -> checked values, or a :class:`RequestError` naming the field, the rule and the status.

Every endpoint takes one JSON object. The texts follow ``rmdata score``'s record rules (``rmdata.data.rules``:
a prompt is a string or a message list ending with the user's turn) except that a response may be an empty
string: an RL policy can generate nothing, and that reply still needs a reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from rmdata.data.rules import Message, Problems, check_messages, check_prompt, check_prompt_ends_with_user, describe


class RequestError(Exception):
    """A request the server refuses: HTTP ``status``, the ``field`` at fault (None: the whole body) and why."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


@dataclass
class Rows:
    """Conversations to score: ``prompt + [assistant response]`` each, in request order."""

    prompts: list[list[Message]]
    responses: list[str]


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise RequestError(400, None, f"the body is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise RequestError(422, None, f"the body must be a JSON object; got {describe(value)}")
    return value


def reward_queries(body: dict[str, Any], max_rows: int) -> tuple[list[str], list[str] | None]:
    """OpenRLHF's ``{"query": [str], "prompts": [str] | null, "labels": any}``: the queries and their prompts."""
    queries = _strings(body.get("query"), "query", max_rows)
    prompts = body.get("prompts")
    if prompts is None:
        return queries, None
    prompts = _strings(prompts, "prompts", max_rows)
    if len(prompts) != len(queries):
        raise RequestError(422, "prompts", f"prompts has {len(prompts)} items, query has {len(queries)}; send one each")
    return queries, prompts


def score_rows(body: dict[str, Any], max_rows: int) -> Rows:
    """``{"rows": [row, ...]}`` or one row; a row is ``{prompt, response}``, ``{prompt, responses}`` or
    ``{messages}`` (a conversation ending with the assistant's reply)."""
    if "rows" in body:
        items = body["rows"]
        if not isinstance(items, list) or not items:
            raise RequestError(422, "rows", f"rows must be a non-empty list of objects; got {describe(items)}")
        named = [(f"rows[{i}]", item) for i, item in enumerate(items)]
    else:
        named = [("", body)]
    rows = Rows([], [])
    for where, item in named:
        if not isinstance(item, dict):
            raise RequestError(422, where, f"{where} must be an object; got {describe(item)}")
        _add_row(rows, item, where)
        if len(rows.responses) > max_rows:
            raise _too_many(len(rows.responses), max_rows)
    return rows


def best_of_n(body: dict[str, Any], max_rows: int) -> tuple[Rows, int | None]:
    """``{"prompt", "responses": [...], "n": int | null}``: one row per candidate, and how many to rank."""
    prompt = _prompt(body.get("prompt"), "prompt")
    responses = _strings(body.get("responses"), "responses", max_rows)
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise RequestError(
            422, "n", f"n must be a positive integer (how many of the ranking to return); got {describe(n)}"
        )
    return Rows([prompt] * len(responses), responses), n


def _add_row(rows: Rows, item: dict[str, Any], where: str) -> None:
    at = f"{where}." if where else ""
    if "messages" in item:
        messages = _checked(check_messages, item["messages"], f"{at}messages")
        last = messages[-1]
        if last["role"] != "assistant" or len(messages) < 2:
            field = f"{at}messages[{len(messages) - 1}].role"
            raise RequestError(
                422, field, f"{field}: a conversation to score ends with the assistant's reply after a user turn"
            )
        rows.prompts.append(_ends_with_user(messages[:-1], f"{at}messages"))
        rows.responses.append(last["content"])
        return
    prompt = _prompt(item.get("prompt"), f"{at}prompt")
    if "responses" in item:
        replies = _strings(item["responses"], f"{at}responses", None)
    elif "response" in item:
        replies = [_string(item["response"], f"{at}response")]
    else:
        raise RequestError(
            422, f"{at}response", f"{where or 'the body'} needs response (a string), responses or messages"
        )
    rows.prompts.extend([prompt] * len(replies))
    rows.responses.extend(replies)


def _prompt(value: Any, field: str) -> list[Message]:
    if value is None:
        raise RequestError(422, field, f"{field} is missing: a string or a list of messages")
    return _ends_with_user(_checked(check_prompt, value, field), field)


def _ends_with_user(prompt: list[Message], field: str) -> list[Message]:
    problems = Problems()
    if not check_prompt_ends_with_user(prompt, field, f"{field}'s last message", problems):
        raise RequestError(422, field, problems.items[0][1])
    return prompt


def _checked(check: Any, value: Any, field: str) -> Any:
    problems = Problems()
    out = check(value, field, problems)
    if out is None or problems:
        where, message = problems.items[0]
        raise RequestError(422, where or field, message)
    return out


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise RequestError(422, field, f"{field} must be a string; got {describe(value)}")
    return value


def _strings(value: Any, field: str, max_rows: int | None) -> list[str]:
    if not isinstance(value, list) or not value:
        raise RequestError(422, field, f"{field} must be a non-empty list of strings; got {describe(value)}")
    if max_rows is not None and len(value) > max_rows:
        raise _too_many(len(value), max_rows)
    for i, item in enumerate(value):
        _string(item, f"{field}[{i}]")
    return value


def _too_many(rows: int, limit: int) -> RequestError:
    return RequestError(413, None, f"the request holds {rows} rows, over --max-request-rows {limit}; split it")
