"""Per-format normalization and the rules a record must follow, one format at a time."""

from __future__ import annotations

from typing import Any

import pytest

from rmdata.data.load import LoadedData, load_dataset_records

SYS = {"role": "system", "content": "Be brief."}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def bot(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


@pytest.fixture
def load(write_jsonl):
    def run(rows: list[dict[str, Any] | str], format: str | None = None) -> LoadedData:
        return load_dataset_records([write_jsonl("d.jsonl", rows)], format=format, on_error="skip")

    return run


def messages_of(loaded: LoadedData) -> list[str]:
    return [e.message for e in loaded.errors]


# --- pairs -------------------------------------------------------------------------------------------


def test_pairs_strings_become_one_user_turn_and_texts_stay_untouched(load) -> None:
    got = load([{"prompt": "Hi?", "chosen": "  Hello!\n", "rejected": "Go away.", "margin": 2}])
    assert got.errors == []
    row = got.frame.row(0, named=True)
    assert row["prompt"] == [user("Hi?")]
    assert (row["chosen"], row["rejected"], row["margin"]) == ("  Hello!\n", "Go away.", 2.0)


def test_pairs_message_prompt_keeps_system_and_earlier_turns(load) -> None:
    prompt = [SYS, user("2+2?"), bot("4"), user("times 3?")]
    got = load([{"prompt": prompt, "chosen": [bot("12")], "rejected": [bot("7")]}])
    row = got.frame.row(0, named=True)
    assert (row["prompt"], row["chosen"], row["rejected"], row["margin"]) == (prompt, "12", "7", None)


def test_pairs_leading_reply_messages_join_the_prompt(load) -> None:
    got = load([{"prompt": [user("Hi")], "chosen": [bot("Hello"), user("Joke?"), bot("A pun.")],
                 "rejected": [bot("Hello"), user("Joke?"), bot("No.")]}])  # fmt: skip
    row = got.frame.row(0, named=True)
    assert row["prompt"] == [user("Hi"), bot("Hello"), user("Joke?")]
    assert (row["chosen"], row["rejected"]) == ("A pun.", "No.")


def test_pairs_replies_that_repeat_the_prompt_do_not_duplicate_it(load) -> None:
    """UltraFeedback-style rows: prompt "Q", chosen/rejected = [user Q, assistant A]."""
    got = load([{"prompt": "Q", "chosen": [user("Q"), bot("good")], "rejected": [user("Q"), bot("bad")]}])
    assert got.frame.row(0, named=True)["prompt"] == [user("Q")]


def test_pairs_rule_violations(load) -> None:
    got = load([
        {"prompt": "Q", "chosen": "same", "rejected": "same"},
        {"prompt": "Q", "chosen": [user("a"), bot("x")], "rejected": [user("b"), bot("y")]},
        {"prompt": [user("Q"), bot("A")], "chosen": "x", "rejected": "y"},
        {"prompt": "Q", "chosen": "x", "rejected": "y", "margin": "high"},
        {"prompt": "Q", "chosen": "x", "rejected": "y", "margin": True},
        {"prompt": "Q", "chosen": [bot("x"), user("more")], "rejected": "y"},
        {"prompt": "", "chosen": "x", "rejected": " \n"},
        {"prompt": "Q", "chosen": 3, "rejected": "y"},
    ])  # fmt: skip
    assert got.frame.height == 0
    assert messages_of(got) == [
        "chosen and rejected are the same text; a pair needs two different responses",
        "chosen and rejected must be the same conversation up to their final assistant message; "
        "they differ at message 0 (2 vs 2 messages)",
        'the prompt\'s last message must be from the user (the turn the response answers); got role "assistant"',
        'margin must be a number or null; got string "high"',
        "margin must be a number or null; got boolean true",
        'chosen[1].role must be assistant (the reply being judged); got "user"',
        "prompt is empty",
        "rejected is empty",
        "chosen must be a string or a list of messages; got number 3",
    ]
    assert [e.field for e in got.errors][:4] == ["rejected", "rejected", "prompt", "margin"]


def test_nan_margin_is_no_margin(load) -> None:
    got = load(['{"prompt": "Q", "chosen": "x", "rejected": "y", "margin": NaN}'])
    assert got.errors == [] and got.frame["margin"].to_list() == [None]


# --- pairs-implicit ------------------------------------------------------------------------------------


def test_implicit_shared_turns_are_the_prompt(load) -> None:
    convo = [SYS, user("Hi"), bot("Hello"), user("Pick a number")]
    got = load([{"chosen": [*convo, bot("7")], "rejected": [*convo, bot("banana")], "margin": 0.5}])
    assert got.format == "pairs-implicit" and got.errors == []
    row = got.frame.row(0, named=True)
    assert (row["prompt"], row["chosen"], row["rejected"], row["margin"]) == (convo, "7", "banana", 0.5)


def test_implicit_rule_violations(load) -> None:
    got = load([
        {"chosen": [user("A"), bot("x")], "rejected": [user("B"), bot("y")]},
        {"chosen": [bot("x")], "rejected": [bot("y")]},
        {"chosen": [user("A"), bot("x")], "rejected": [user("A"), bot("y"), user("more")]},
        {"chosen": "x", "rejected": [user("A"), bot("y")]},
    ], format="pairs-implicit")  # fmt: skip
    assert messages_of(got) == [
        "chosen and rejected must be the same conversation up to their final assistant message; "
        "they differ at message 0 (2 vs 2 messages)",
        "chosen holds only the assistant's reply; pairs-implicit needs the prompt turns too",
        'rejected[2].role must be assistant (the reply being judged); got "user"',
        'chosen must be a list of messages (pairs-implicit holds whole conversations); got string "x"',
    ]


# --- hh ------------------------------------------------------------------------------------------------


def test_hh_transcripts_split_into_turns(load) -> None:
    head = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a fact.\n\nAssistant:"
    got = load([{"chosen": head + " Honey never spoils.", "rejected": head + " No.\n", "id": 1}])
    assert got.format == "hh" and got.errors == []
    row = got.frame.row(0, named=True)
    assert row["prompt"] == [user("Hi there"), bot("Hello!"), user("Tell me a fact.")]
    assert (row["chosen"], row["rejected"], row["id"]) == ("Honey never spoils.", "No.", 1)


def test_hh_rule_violations(load) -> None:
    got = load([
        {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"},
        {"chosen": "\n\nHuman: A\n\nAssistant: x",
         "rejected": "\n\nHuman: A\n\nAssistant: y\n\nHuman: more\n\nAssistant: z"},
        {"chosen": "\n\nHuman: A\n\nHuman: again\n\nAssistant: x", "rejected": "\n\nHuman: A\n\nAssistant: y"},
        {"chosen": "\n\nHuman: A\n\nAssistant:", "rejected": "\n\nHuman: A\n\nAssistant: y"},
        {"chosen": "\n\nHuman: A", "rejected": "\n\nHuman: A\n\nAssistant: y"},
        {"chosen": "just text", "rejected": "Note first\n\nHuman: A\n\nAssistant: y"},
    ])  # fmt: skip
    assert got.frame.height == 0
    assert messages_of(got) == [
        "chosen and rejected transcripts do not line up: they differ at turn 1 (2 vs 2 turns); "
        "only the final Assistant turn may differ",
        "chosen and rejected transcripts do not line up: they differ at turn 2 (2 vs 4 turns); "
        "only the final Assistant turn may differ",
        "chosen turn 2 is Human, expected Assistant (turns must alternate Human, Assistant)",
        "chosen turn 2 (Assistant) is empty",
        "chosen must end with an Assistant turn (the reply being judged); it ends with Human",
        'chosen is not an HH transcript: no "Human:" / "Assistant:" turns found '
        "(pairs of plain strings need a prompt column)",
        'rejected must start with a Human: turn; got string "Note first" first',
    ]


# --- corpus formats -----------------------------------------------------------------------------------


def test_messages_last_message_is_the_response(load) -> None:
    got = load([{"messages": [{"role": "system", "content": ""}, user("Hi"), bot("Hello")], "gen": "m"}])
    assert got.format == "messages" and got.kind == "corpus" and got.errors == []
    row = got.frame.row(0, named=True)
    assert (row["prompt"], row["response"], row["gen"]) == (
        [{"role": "system", "content": ""}, user("Hi")],
        "Hello",
        "m",
    )


def test_messages_rule_violations(load) -> None:
    got = load([
        {"messages": [SYS, user("Hi"), {"role": "bot", "content": "x"}, bot("y")]},
        {"messages": [user("Hi"), bot("x"), user("thanks")]},
        {"messages": [bot("x")]},
        {"messages": [user("Hi"), bot("x"), bot("y")]},
        {"messages": [user("Hi"), {"role": "assistant", "content": [{"type": "text", "text": "x"}]}]},
        {"messages": [user("  "), {"content": "x"}]},
        {"messages": []},
        {"messages": "Hi"},
    ])  # fmt: skip
    assert got.frame.height == 0
    assert messages_of(got) == [
        'messages[2].role must be one of system, user, assistant; got "bot"',
        'messages[2].role must be assistant (the response to score); got "user"',
        "messages holds only the assistant's reply; it needs the prompt turns before it",
        'messages[1] must be from the user (the turn the response answers); got role "assistant"',
        'messages[1].content must be a string; got list [{"type": "text", "text": "x"}]',
        "messages[0].content is empty",
        "messages[1].role must be one of system, user, assistant; got no role",
        "messages is an empty list; it needs at least one message",
        'messages must be a list of messages; got string "Hi"',
    ]
    assert got.invalid == 8  # the record with two problems is one reject
    assert got.rejects[5].to_json()["errors"] == [
        {"field": "messages[0].content", "message": "messages[0].content is empty"},
        {
            "field": "messages[1].role",
            "message": "messages[1].role must be one of system, user, assistant; got no role",
        },
    ]


def test_prompt_response(load) -> None:
    got = load([
        {"prompt": [SYS, user("Q")], "response": "A"},
        {"prompt": "Q", "response": ""},
        {"prompt": "   ", "response": "A"},
        {"prompt": "Q", "response": ["A"]},
    ])  # fmt: skip
    assert got.format == "prompt-response"
    assert got.frame.row(0, named=True)["prompt"] == [SYS, user("Q")]
    assert messages_of(got) == ["response is empty", "prompt is empty", 'response must be a string; got list ["A"]']


def test_alpaca_input_joins_the_instruction(load) -> None:
    got = load([
        {"instruction": "Translate.", "input": "Bonjour", "output": "Hello", "generator": "m1"},
        {"instruction": "Say hi.", "input": "", "output": "Hi", "generator": "m2"},
        {"instruction": "Say hi.", "output": "  ", "generator": "m3"},
        {"instruction": "Say hi.", "input": 3, "output": "Hi"},
    ])  # fmt: skip
    assert got.format == "alpaca" and got.kind == "corpus"
    assert got.frame["prompt"].to_list() == [[user("Translate.\n\nBonjour")], [user("Say hi.")]]
    assert got.frame["response"].to_list() == ["Hello", "Hi"]
    assert got.frame["generator"].to_list() == ["m1", "m2"]
    assert "input" not in got.frame.columns and "instruction" not in got.frame.columns
    assert messages_of(got) == ["output is empty", "input must be a string; got number 3"]


def test_multi_response_explodes_and_drops_only_the_bad_response(load) -> None:
    got = load([
        {"prompt": "Q1", "responses": ["a", "b", "c"], "tag": "x"},
        {"prompt": "Q2", "responses": ["d", "", 7]},
        {"prompt": "Q3", "responses": []},
        {"prompt": "", "responses": ["e"]},
    ])  # fmt: skip
    assert got.format == "multi-response"
    frame = got.frame
    assert frame["response"].to_list() == ["a", "b", "c", "d"]
    assert frame["response_index"].to_list() == [0, 1, 2, 0]
    assert frame["tag"].to_list() == ["x", "x", "x", None]
    assert frame["source"].to_list()[3].endswith("d.jsonl:2")
    assert messages_of(got) == [
        "responses[1] is empty",
        "responses[2] must be a string; got number 7",
        "responses must be a non-empty list of strings; got list []",
        "prompt is empty",
    ]
    assert [r.reason for r in got.rejects] == ["invalid_response", "invalid_record", "invalid_record"]
    assert got.rejects[0].message.endswith("(the record's other 1 response(s) are kept)")
