"""Parse and check an OpenAI Chat Completions request body.

Every problem is an InvalidRequest naming the parameter, never echoing its
value: a message's text may be a patient's words.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeGuard

from gateway import jsontext
from gateway.errors import InvalidRequest
from gateway.inbound import TokenParts

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_TOKENS_CEILING = 1_000_000
IMAGE_TOKENS = 765
TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMING = 3, 1, 3
MAX_MESSAGES = 10_000
_PASSTHROUGH_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    include_usage: bool
    body: dict[str, Any]  # the whole validated body, for adapters to translate
    size: int = 0  # the body's length in bytes as received (0 when built from a dict): how costly counting is

    @property
    def endpoint(self) -> str:
        return "chat.completions"

    @property
    def generates(self) -> bool:
        return True

    def token_parts(self) -> TokenParts:
        """Prompt text as OpenAI counts it: 3 tokens per message, 1 per name, 3 to prime the reply, images."""
        texts: list[str] = []
        fixed = REPLY_PRIMING
        for message in self.messages:
            fixed += TOKENS_PER_MESSAGE
            texts.append(str(message.get("role", "")))
            texts.append(text_of(message.get("content")))
            if isinstance(message.get("name"), str):
                texts.append(message["name"])
                fixed += TOKENS_PER_NAME
            fixed += IMAGE_TOKENS * image_parts(message.get("content"))
            if message.get("tool_calls"):
                texts.append(json.dumps(message["tool_calls"]))
        tools = self.body.get("tools")
        if tools:
            texts.append(json.dumps(tools))
        return TokenParts(texts, fixed)


def parse(raw: bytes) -> ChatRequest:
    return dataclasses.replace(from_body(json_body(raw)), size=len(raw))


def json_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or InvalidRequest saying what is wrong with it (never quoting it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    try:
        body = jsontext.loads(text)
    except ValueError:
        raise InvalidRequest("request body is not valid JSON") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def from_body(body: dict[str, Any]) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise InvalidRequest("model is required and must be a non-empty string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages is required and must be a non-empty array", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest(f"messages may hold at most {MAX_MESSAGES} items", param="messages")
    for i, message in enumerate(messages):
        _check_message(message, i)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    max_tokens = _max_tokens(body)
    n = body.get("n", 1)
    if n is not None and (not is_int(n) or n != 1):
        raise InvalidRequest("n must be 1: the gateway meters and routes one choice per request", param="n")
    for name, (low, high) in _PASSTHROUGH_NUMBERS.items():
        value = body.get(name)
        if value is not None and (not is_number(value) or not low <= value <= high):
            raise InvalidRequest(f"{name} must be a number from {low:g} to {high:g}", param=name)
    options = body.get("stream_options")
    if options is not None and (
        not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool)
    ):
        raise InvalidRequest("stream_options must be an object with a boolean include_usage", param="stream_options")
    if options is not None and not stream:
        raise InvalidRequest("stream_options is only allowed with stream: true", param="stream_options")
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequest("stop must be a string or an array of strings", param="stop")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(_is_function_tool(t) for t in tools)):
        raise InvalidRequest("tools must be an array of function tools", param="tools")
    include_usage = bool(options and options.get("include_usage"))
    return ChatRequest(model, messages, stream, max_tokens, include_usage, body)


def _check_message(message: Any, i: int) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    if message.get("role") not in ROLES:
        raise InvalidRequest(f"{where}.role must be one of {', '.join(sorted(ROLES))}", param=f"{where}.role")
    content = message.get("content")
    if content is None:
        if message.get("role") != "assistant":
            raise InvalidRequest(f"{where}.content is required", param=f"{where}.content")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(f"{where}.content[{j}] must be an object with a type", param=f"{where}.content")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise InvalidRequest(f"{where}.content[{j}].text must be a string", param=f"{where}.content")
            image = part.get("image_url")
            if part["type"] == "image_url" and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
                raise InvalidRequest(
                    f"{where}.content[{j}].image_url must be an object with a string url", param=f"{where}.content"
                )
    elif not isinstance(content, str):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts", param=f"{where}.content")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not (isinstance(tool_calls, list) and all(_is_tool_call(c) for c in tool_calls)):
        raise InvalidRequest(f"{where}.tool_calls must be an array of function calls", param=f"{where}.tool_calls")
    if message.get("role") == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise InvalidRequest(f"{where}.tool_call_id is required for tool messages", param=f"{where}.tool_call_id")


def _max_tokens(body: dict[str, Any]) -> int | None:
    """The completion cap, validated in both of its spellings: the value the policy sees is exactly the
    value the provider gets, so two different values are refused rather than one of them chosen."""
    found: dict[str, int] = {}
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not is_int(value) or not 1 <= value <= MAX_TOKENS_CEILING:
            raise InvalidRequest(f"{name} must be an integer from 1 to {MAX_TOKENS_CEILING}", param=name)
        found[name] = int(value)
    if len(set(found.values())) > 1:
        raise InvalidRequest(
            "max_tokens and max_completion_tokens differ: send one of them (or the same value in both)",
            param="max_tokens",
        )
    return next(iter(found.values()), None)


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_function_tool(tool: Any) -> bool:
    return (
        isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    )


def _is_tool_call(call: Any) -> bool:
    return (
        isinstance(call, dict)
        and isinstance(call.get("id"), str)
        and isinstance(call.get("function"), dict)
        and isinstance(call["function"].get("name"), str)
        and isinstance(call["function"].get("arguments", ""), str)
    )


def text_of(content: Any) -> str:
    """The text of a message's content (string or parts), for token counting and translation."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def image_parts(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image"))
