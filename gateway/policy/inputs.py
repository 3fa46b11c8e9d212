"""The shape of the policy input (metadata only), checked for `gateway policy eval` and the OPA test double."""

from __future__ import annotations

from typing import Any

_SHAPE: dict[str, dict[str, tuple[type, ...]]] = {
    "principal": {"api_key_sha256": (str, type(None)), "jwt": (str, type(None))},
    "request": {
        "endpoint": (str,),
        "model": (str, type(None)),
        "stream": (bool,),
        "max_tokens": (int, type(None)),
        "prompt_tokens": (int,),
        "provider": (str, type(None)),
    },
    "context": {
        "use_case": (str, type(None)),
        "data_classification": (str, type(None)),
        "client_ip": (str, type(None)),
    },
}


_OPTIONAL = frozenset({"provider"})  # added later: inputs written before it still check


def _check_content(value: Any) -> None:
    content = value.get("content")
    if content is None:
        return
    signals = content.get("signals") if isinstance(content, dict) else None
    if not isinstance(signals, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in signals.values()
    ):
        raise ValueError("policy input content.signals must be an object of counts")


def check_input(value: Any) -> None:
    """Raise ValueError naming the first field that is missing or of the wrong type."""
    if not isinstance(value, dict):
        raise ValueError("policy input must be a JSON object with principal, request and context")
    for section, fields in _SHAPE.items():
        part = value.get(section)
        if not isinstance(part, dict):
            raise ValueError(f"policy input needs an object at {section}")
        for name, types in fields.items():
            if name not in part and name not in _OPTIONAL:
                raise ValueError(f"policy input is missing {section}.{name}")
            if name not in part:
                continue
            field = part[name]
            if not isinstance(field, types) or (isinstance(field, bool) and bool not in types):
                expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise ValueError(f"policy input {section}.{name} must be {expected}")
    _check_content(value)
