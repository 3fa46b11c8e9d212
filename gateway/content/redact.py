"""Replace detected spans with typed placeholders before a request is forwarded (the policy's `redact` verdict).

Only text a client wrote is touched: string values under content-bearing keys (content, text, input,
instructions, system, arguments, output, partial_json), never model names, roles, ids or tool schemas.
Each span of a type the verdict names becomes `[REDACTED:<TYPE>]`.
"""

from __future__ import annotations

from typing import Any

from gateway.content.detectors import Detector

TEXT_KEYS = frozenset({"content", "text", "input", "instructions", "system", "arguments", "output"})


def redact_text(text: str, detectors: list[Detector]) -> str:
    for detector in detectors:
        text = detector.redact(text, f"[REDACTED:{detector.name.upper()}]")
    return text


def redact_body(body: dict[str, Any], detectors: list[Detector]) -> dict[str, Any]:
    result: dict[str, Any] = _walk(body, detectors, under_text=False)
    return result


def _walk(value: Any, detectors: list[Detector], *, under_text: bool) -> Any:
    if isinstance(value, str):
        return redact_text(value, detectors) if under_text else value
    if isinstance(value, list):
        return [_walk(v, detectors, under_text=under_text) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, detectors, under_text=under_text or k in TEXT_KEYS) for k, v in value.items()}
    return value


def texts_in(value: Any, *, under_text: bool = False) -> list[str]:
    """Every string under a content-bearing key (what an answer says), for the output scan."""
    if isinstance(value, str):
        return [value] if under_text else []
    if isinstance(value, list):
        return [t for v in value for t in texts_in(v, under_text=under_text)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in texts_in(v, under_text=under_text or k in TEXT_KEYS)]
    return []
