"""Parse and check an OpenAI Responses request body (`POST /v1/responses`).

Input is a string or a list of items (messages with text, image and file parts, function calls and
their outputs, item references); `instructions`, `tools`, `reasoning`, `text` and the sampling
parameters pass through. `max_output_tokens` is the completion cap the policy sees and the team's cap
applies. A follow-up names `previous_response_id`: it goes to the provider that produced that
response, for the team that created it. `background` is refused: a response finished after the
gateway answered could not be metered. Errors name the parameter, never its value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.chat import MAX_TOKENS_CEILING, is_int, is_number, json_body
from gateway.errors import InvalidRequest
from gateway.inbound import TokenParts

MAX_ITEMS = 10_000
RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TEXT_PARTS = ("input_text", "output_text", "text", "refusal", "summary_text")


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    model: str
    stream: bool
    max_tokens: int | None
    previous_response_id: str | None
    store: bool
    body: dict[str, Any]
    size: int = 0

    @property
    def endpoint(self) -> str:
        return "responses"

    @property
    def generates(self) -> bool:
        return True

    @property
    def include_usage(self) -> bool:
        return True

    def token_parts(self) -> TokenParts:
        texts: list[str] = []
        fixed = 3
        instructions = self.body.get("instructions")
        if isinstance(instructions, str):
            texts.append(instructions)
        source = self.body.get("input")
        items = [{"role": "user", "content": source}] if isinstance(source, str) else (source or [])
        for item in items:
            fixed += 3
            texts.extend(_item_texts(item))
            content = item.get("content")
            if isinstance(content, list):
                fixed += 765 * sum(1 for p in content if isinstance(p, dict) and p.get("type") == "input_image")
        if self.body.get("tools"):
            texts.append(json.dumps(self.body["tools"]))
        return TokenParts(texts, fixed)


def parse(raw: bytes) -> ResponsesRequest:
    return from_body(json_body(raw), size=len(raw))


def from_body(body: dict[str, Any], *, size: int = 0) -> ResponsesRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise InvalidRequest("model is required and must be a non-empty string", param="model")
    _check_input(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise InvalidRequest("instructions must be a string", param="instructions")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    cap = body.get("max_output_tokens")
    if cap is not None and (not is_int(cap) or not 1 <= cap <= MAX_TOKENS_CEILING):
        raise InvalidRequest(
            f"max_output_tokens must be an integer from 1 to {MAX_TOKENS_CEILING}", param="max_output_tokens"
        )
    previous = body.get("previous_response_id")
    if previous is not None and not (isinstance(previous, str) and RESPONSE_ID.match(previous)):
        raise InvalidRequest("previous_response_id must be a response id", param="previous_response_id")
    store = body.get("store", True)
    if not isinstance(store, bool):
        raise InvalidRequest("store must be a boolean", param="store")
    if body.get("background") not in (None, False):
        raise InvalidRequest("background responses are not available through this gateway", param="background")
    if body.get("conversation") is not None:
        raise InvalidRequest(
            "conversation is not available through this gateway: use previous_response_id", param="conversation"
        )
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) and isinstance(t.get("type"), str) for t in tools)
    ):
        raise InvalidRequest("tools must be an array of tool objects with a type", param="tools")
    for name, (low, high) in {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}.items():
        value = body.get(name)
        if value is not None and (not is_number(value) or not low <= value <= high):
            raise InvalidRequest(f"{name} must be a number from {low:g} to {high:g}", param=name)
    for name in ("reasoning", "text", "metadata", "stream_options"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise InvalidRequest(f"{name} must be an object", param=name)
    return ResponsesRequest(model, stream, cap, previous, store, body, size)


def _check_input(value: Any) -> None:
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("input must not be empty", param="input")
        return
    if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
        raise InvalidRequest(f"input must be a non-empty string or an array of 1 to {MAX_ITEMS} items", param="input")
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise InvalidRequest(f"{where}.type must be a string", param=where)
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(
                    f"{where}.role must be user, assistant, system or developer", param=f"{where}.role"
                )
            content = item.get("content")
            if not isinstance(content, str) and not (
                isinstance(content, list)
                and all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in content)
            ):
                raise InvalidRequest(f"{where}.content must be a string or an array of parts", param=f"{where}.content")
        elif kind == "function_call_output" and not isinstance(item.get("call_id"), str):
            raise InvalidRequest(f"{where}.call_id is required", param=f"{where}.call_id")


def _item_texts(item: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    content = item.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts.extend(p["text"] for p in content if p.get("type") in TEXT_PARTS and isinstance(p.get("text"), str))
    for key in ("output", "arguments", "name"):
        value = item.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.append(json.dumps(value))
    return texts


def _typed(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("type"), str)
