"""Apply decision-log masks the way OPA does: JSON pointers to erase, `upsert` objects to overwrite.

Only pointers under /input and /result are honoured (as in OPA). Erased and
upserted pointers are listed in the event's `erased` and `masked` fields.
"""

from __future__ import annotations

from typing import Any

ALLOWED_ROOTS = ("input", "result")


def _tokens(pointer: str) -> list[str] | None:
    if not pointer.startswith("/"):
        return None
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    return tokens if tokens and tokens[0] in ALLOWED_ROOTS else None


def _parent(event: dict[str, Any], tokens: list[str], *, create: bool) -> tuple[Any, str] | None:
    node: Any = event
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                if not create:
                    return None
                node[token] = {}
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node, tokens[-1]


def apply(event: dict[str, Any], masks: Any) -> dict[str, Any]:
    """Erase and upsert in place; returns the event. Malformed mask entries are ignored."""
    erased: list[str] = []
    masked: list[str] = []
    for mask in masks if isinstance(masks, list | set | tuple) else []:
        if isinstance(mask, str):
            tokens = _tokens(mask)
            found = _parent(event, tokens, create=False) if tokens else None
            if found is None:
                continue
            node, last = found
            if isinstance(node, dict) and last in node:
                del node[last]
                erased.append(mask)
            elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
                del node[int(last)]
                erased.append(mask)
        elif isinstance(mask, dict) and mask.get("op") == "upsert" and isinstance(mask.get("path"), str):
            tokens = _tokens(mask["path"])
            found = _parent(event, tokens, create=True) if tokens else None
            if found is None or not isinstance(found[0], dict):
                continue
            found[0][found[1]] = mask.get("value")
            masked.append(mask["path"])
    if erased:
        event["erased"] = sorted(erased)
    if masked:
        event["masked"] = sorted(masked)
    return event
