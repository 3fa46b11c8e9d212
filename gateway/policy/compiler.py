"""Turn Rego modules and data into a ready OPA engine, with OPA's own error messages."""

from __future__ import annotations

import re
from typing import Any

from opa_bindings import OpaEngine, OpaError

from gateway.errors import BundleError

_LOCATED = re.compile(r"^\S+:\d+: .+$")


def error_lines(exc: OpaError) -> list[str]:
    """OPA's messages as `file:row: message` lines (the header and source excerpts dropped)."""
    lines = [line.strip() for line in exc.message.splitlines()]
    located = []
    for line in lines:
        head = line.split("failed: ", 1)[-1]
        head = re.sub(r"^\d+ errors? occurred: ", "", head)
        if _LOCATED.match(head):
            located.append(head)
    return located or [exc.message.splitlines()[0] if exc.message else exc.code]


def compile_engine(modules: dict[str, str], data: dict[str, Any]) -> OpaEngine:
    """Parse, add data and compile; raise BundleError naming the first problem."""
    engine = OpaEngine()
    try:
        for name, source in modules.items():
            engine.add_policy(name, source)
        if data:
            engine.add_data(data)
        engine.eval_query("true")  # forces compilation of every module now, not on the first request
    except OpaError as exc:
        engine.close()
        detail = re.sub(r"^bundle activation failed: ", "", exc.message or exc.code)
        raise BundleError("; ".join(error_lines(exc)), detail=detail) from exc
    return engine
