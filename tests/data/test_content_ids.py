"""Content ids: the canonical prompt JSON is json's compact form whatever the text."""

from __future__ import annotations

import hashlib
import json

import pytest

from rmdata.data.schema import canonical_json, prompt_id

TRICKY = ["", "plain", 'quote " and \\ backslash', "\n\r\t\b\f", "\x00\x01\x1f\x7f", "é ü 中文", "\u2028\u2029",
          "\U0001f600 astral", "</script>", "\ufeff bom", "\uffff"]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY)
def test_canonical_json_is_jsons_compact_form(text: str) -> None:
    value = [["user", text], ["assistant", text * 2]]
    assert canonical_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_every_bmp_character_gives_jsons_bytes() -> None:
    text = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000)
    value = [["user", text]]
    assert canonical_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_prompt_id_is_the_documented_hash() -> None:
    messages = [{"role": "user", "content": "Hi é"}]
    expected = hashlib.sha256('[["user","Hi é"]]'.encode()).hexdigest()[:16]
    assert prompt_id(messages) == expected


def test_a_lone_surrogate_fails_as_it_always_did() -> None:
    with pytest.raises(UnicodeEncodeError):
        prompt_id([{"role": "user", "content": "\ud800"}])
