"""Parse and check an Anthropic Messages request body (`POST /v1/messages`, `/v1/messages/count_tokens`).

`max_tokens` is required, as Anthropic requires it; `system` is a string or text blocks; message
content is a string or blocks (text, image, document, tool_use, tool_result, thinking). Everything
else passes through to Anthropic upstreams, and is translated for the others (providers/messages_*.py).
Errors name the parameter, never its value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.chat import MAX_TOKENS_CEILING, is_int, is_number, json_body
from gateway.errors import InvalidRequest
from gateway.inbound import TokenParts

MAX_MESSAGES = 10_000
ROLES = ("user", "assistant")
BETA = re.compile(r"^[a-z0-9-]{1,64}(,\s*[a-z0-9-]{1,64}){0,15}$")
IMAGE_TOKENS = 1600  # Anthropic's own rule of thumb for a large image: (width x height) / 750, at most ~1600


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    body: dict[str, Any]
    size: int = 0
    beta: str | None = None  # the client's anthropic-beta flags, forwarded to Anthropic upstreams

    @property
    def endpoint(self) -> str:
        return "messages"

    @property
    def generates(self) -> bool:
        return True

    @property
    def include_usage(self) -> bool:
        return True

    @property
    def system(self) -> str:
        return text_of(self.body.get("system"))

    def token_parts(self) -> TokenParts:
        texts = [self.system]
        fixed = 3
        for message in self.messages:
            fixed += 3
            content = message.get("content")
            texts.append(text_of(content))
            for block in content if isinstance(content, list) else []:
                if block.get("type") == "image":
                    fixed += IMAGE_TOKENS
                elif block.get("type") == "tool_use":
                    texts.append(json.dumps(block.get("input")))
                elif block.get("type") == "tool_result":
                    texts.append(text_of(block.get("content")))
        if self.body.get("tools"):
            texts.append(json.dumps(self.body["tools"]))
        return TokenParts(texts, fixed)


def parse(raw: bytes, *, counting: bool = False) -> MessagesRequest:
    return from_body(json_body(raw), size=len(raw), counting=counting)


def from_body(body: dict[str, Any], *, size: int = 0, counting: bool = False) -> MessagesRequest:
    """`counting`: a count_tokens body, which has no max_tokens and never streams."""
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise InvalidRequest("model: field required, a non-empty string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        raise InvalidRequest(f"messages: field required, an array of 1 to {MAX_MESSAGES} messages", param="messages")
    for i, message in enumerate(messages):
        _check_message(message, i)
    max_tokens = body.get("max_tokens")
    if not counting and (not is_int(max_tokens) or not 1 <= max_tokens <= MAX_TOKENS_CEILING):
        problem = f"max_tokens: field required, an integer from 1 to {MAX_TOKENS_CEILING}"
        raise InvalidRequest(problem, param="max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) or (counting and stream):
        raise InvalidRequest("stream: must be a boolean", param="stream")
    system = body.get("system")
    if system is not None and not isinstance(system, str) and not _blocks(system, ("text",)):
        raise InvalidRequest("system: must be a string or an array of text blocks", param="system")
    for name, (low, high) in {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0)}.items():
        value = body.get(name)
        if value is not None and (not is_number(value) or not low <= value <= high):
            raise InvalidRequest(f"{name}: must be a number from {low:g} to {high:g}", param=name)
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise InvalidRequest("stop_sequences: must be an array of strings", param="stop_sequences")
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(_is_tool(t) for t in tools)):
        raise InvalidRequest("tools: must be an array of tools, each with a name", param="tools")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata: must be an object", param="metadata")
    cap = max_tokens if is_int(max_tokens) else None
    return MessagesRequest(model, messages, stream, cap, body, size)


def _check_message(message: Any, i: int) -> None:
    where = f"messages.{i}"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where}: must be an object", param=where)
    if message.get("role") not in ROLES:
        raise InvalidRequest(f"{where}.role: must be user or assistant", param=f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not _blocks(content, None) or not content:
        raise InvalidRequest(f"{where}.content: must be a string or an array of content blocks", param=where)
    for j, block in enumerate(content):
        kind = block["type"]
        if kind == "text" and not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{where}.content.{j}.text: must be a string", param=where)
        if kind == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
            raise InvalidRequest(f"{where}.content.{j}: tool_use needs an id and a name", param=where)
        if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequest(f"{where}.content.{j}: tool_result needs a tool_use_id", param=where)
        if kind == "image" and not isinstance(block.get("source"), dict):
            raise InvalidRequest(f"{where}.content.{j}: image needs a source", param=where)


def _blocks(value: Any, kinds: tuple[str, ...] | None) -> bool:
    return isinstance(value, list) and all(
        isinstance(b, dict) and isinstance(b.get("type"), str) and (kinds is None or b["type"] in kinds) for b in value
    )


def _is_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and isinstance(tool.get("name"), str)


def text_of(content: Any) -> str:
    """The text of a string or of the text blocks of a block list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def beta_flags(header: str | None) -> str | None:
    """The client's anthropic-beta header when it is a list of flag names; anything else is a 400."""
    if header is None:
        return None
    if not BETA.match(header.strip()):
        raise InvalidRequest("anthropic-beta: must be a comma-separated list of beta names", param="anthropic-beta")
    return header.strip()
