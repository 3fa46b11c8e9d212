"""JSON encoders made once. `json.dumps` with any option but the defaults builds a new JSONEncoder on every
call; on the request path (upstream bodies, decision cache keys, log lines) that was measurable."""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact(value: Any) -> bytes:
    """`json.dumps(value, separators=(",", ":")).encode()`."""
    return _COMPACT.encode(value).encode()


def canonical(value: Any) -> str:
    """`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`: one text per value."""
    return _CANONICAL.encode(value)
