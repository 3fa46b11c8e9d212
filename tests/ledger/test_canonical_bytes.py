"""Row hashes are over canonical bytes that must never change: every existing chain was hashed over the
standard library's encoding. orjson now writes them for plain rows; these properties hold it to that."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.rows import COLUMNS, Row, _canonical

_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=16)  # controls, DEL, surrogates
_text = _ANY_TEXT | st.text(st.characters(max_codepoint=0x7F, exclude_categories=()), max_size=16)  # controls, DEL
_int = st.integers(-(2**70), 2**70) | st.integers(0, 10**12)
_time = st.floats(0, 4e9, allow_nan=False)
_STRATEGIES: dict[str, Any] = {
    "attempt": _int,
    "refused": st.booleans(),
    "prompt_tokens": _int,
    "completion_tokens": _int,
    "cached_tokens": _int,
    "reasoning_tokens": _int,
    "cost_nusd": _int,
    "seq": _int,
    "started_at": _time,
    "ended_at": _time,
}
_row = st.fixed_dictionaries(
    {c: _STRATEGIES.get(c, st.none() | _text if c not in {"request_id", "endpoint"} else _text) for c in COLUMNS}
)
_OLD = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _old_canonical(fields: dict[str, Any]) -> bytes:
    """The encoding every chain so far was hashed over (rows.py before orjson)."""
    body = {k: v for k, v in fields.items() if k != "row_hash"}
    body["started_at"] = f"{fields['started_at']:.6f}"
    body["ended_at"] = f"{fields['ended_at']:.6f}"
    return _OLD.encode(body).encode()


@settings(max_examples=500, deadline=None)
@given(fields=_row)
def test_canonical_bytes_are_the_standard_librarys(fields: dict[str, Any]) -> None:
    assert _canonical(fields) == _old_canonical(fields)


def test_a_known_row_hashes_as_it_always_did() -> None:
    fields: dict[str, Any] = {c: None for c in COLUMNS} | {
        "request_id": "r-1",
        "attempt": 1,
        "refused": False,
        "endpoint": "chat.completions",
        "team": "cardiology",
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_nusd": 60_000,
        "price_version": "v1",
        "status": "ok",
        "started_at": 1764400000.123456,
        "ended_at": 1764400000.5,
        "instance": "gw-a",
        "seq": 1,
        "prev_hash": "0" * 64,
        "row_hash": "",
    }
    # the hash a row with these fields had before this change (computed with the json encoder)
    assert Row(**fields).computed_hash() == "ec438f19a7c972a26b89ab1b423af9ed640b6806e96eeaafdd866ddc80a411eb"
