"""The events a stand-in provider streams, in OpenAI's and Anthropic's SSE wire formats.

Each builder returns (is_content, frame) pairs, so a stand-in can cut a stream after N content events
and bill exactly what it sent."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.demo.standins import Behavior


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def openai_events(model: str, words: list[str], usage: dict[str, Any], behavior: Behavior) -> list[tuple[bool, bytes]]:
    base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    events = [
        (
            False,
            sse(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                }
            ),
        )
    ]
    if behavior.tool_call is not None:
        name, arguments = behavior.tool_call
        start = {"index": 0, "id": "call_standin", "type": "function", "function": {"name": name, "arguments": ""}}
        more = {"index": 0, "function": {"arguments": arguments}}
        for call in (start, more):
            delta = {"tool_calls": [call]}
            events.append(
                (call is more, sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
            )
        finish = "tool_calls"
    else:
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            events.append(
                (True, sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
            )
        finish = "stop"
    events.append((False, sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})))
    if behavior.usage:
        total = usage["prompt_tokens"] + usage["completion_tokens"]
        events.append((False, sse({**base, "choices": [], "usage": {**usage, "total_tokens": total}})))
    events.append((False, sse("[DONE]")))
    return events


def anthropic_events(
    model: str, words: list[str], usage: dict[str, Any], behavior: Behavior
) -> list[tuple[bool, bytes]]:
    start_usage = {"input_tokens": usage["prompt_tokens"], "output_tokens": 1} if behavior.usage else {}
    message = {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "usage": start_usage,
    }
    events = [
        (False, sse({"type": "message_start", "message": message}, "message_start")),
        (
            False,
            sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
        ),
        (False, sse({"type": "ping"}, "ping")),
    ]
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append((True, sse(delta, "content_block_delta")))
    events.append((False, sse({"type": "content_block_stop", "index": 0}, "content_block_stop")))
    delta_usage = {"output_tokens": usage["completion_tokens"]} if behavior.usage else {}
    events.append(
        (
            False,
            sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta_usage}, "message_delta"),
        )
    )
    events.append((False, sse({"type": "message_stop"}, "message_stop")))
    return events
