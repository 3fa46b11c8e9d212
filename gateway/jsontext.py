"""JSON on the request path: orjson (the maintained C/Rust encoder) where the bytes are ours to choose,
the standard library where its exact semantics matter.

compact / canonical  upstream bodies, stream frames, decision-cache keys: orjson, ~5x cheaper than
                     `json` (whose encoding was 7.5% of a request's instructions). Whatever orjson will
                     not encode (a lone surrogate a client sent as "\\ud800", an integer past 64 bits, a
                     non-string key) is encoded by `json` exactly as before, so no value that used to go
                     through fails now.
loads                the standard library's parser (exact big integers, lone surrogates kept as sent), but
                     strict: NaN, Infinity and -Infinity are not JSON (RFC 8259), and a number too large
                     for a double (1e400) would become one; either would reach a provider as such, or as
                     null through orjson. A client body holding one is a 400, a provider answer holding
                     one a bad answer.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact(value: Any) -> bytes:
    """Compact JSON bytes (UTF-8; `json.dumps(value, separators=(",", ":")).encode()` when orjson refuses)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError included
        return _COMPACT.encode(value).encode()


def canonical(value: Any) -> str:
    """One text per value: keys sorted, compact, UTF-8 (the `json` equivalent when orjson refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return _CANONICAL.encode(value)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range is not JSON here")
    return value


def loads(text: str | bytes) -> Any:
    """`json.loads`, refusing NaN, the infinities and numbers that overflow to them (ValueError, as for any
    text that is not JSON)."""
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)
