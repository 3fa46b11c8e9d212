from __future__ import annotations

import json
from typing import Any

from gateway.chat import from_body
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.sse import SSEParser
from gateway.settings import ProviderSettings

PROVIDER = ProviderSettings(
    name="a",
    kind="anthropic",
    base_url="https://api.example/",
    models={"claude": "claude-x"},
    api_key_env="ANTHROPIC_TEST_KEY",
)
ADAPTER = AnthropicAdapter()


def _build(body: dict[str, Any]) -> dict[str, Any]:
    request = ADAPTER.build(from_body(body), PROVIDER, "claude-x", 777)
    assert request.url == "https://api.example/v1/messages"
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


def test_request_translation_with_tools_and_tool_results() -> None:
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "sys one"},
            {"role": "developer", "content": "sys two"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result one"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "stop": "END",
    }
    out = _build(body)
    assert out["system"] == "sys one\n\nsys two"
    assert out["max_tokens"] == 777
    assert out["messages"][0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ],
    }
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "calling"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}},
    ]
    assert out["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "result one"}],
    }
    assert out["tools"] == [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "any"}
    assert out["stop_sequences"] == ["END"]


def test_answer_translation_text_tools_usage_and_stop_reason() -> None:
    answer = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 2}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
    }
    parsed = ADAPTER.parse(
        json.dumps(answer).encode(), from_body({"model": "claude", "messages": [{"role": "user", "content": "x"}]})
    )
    completion, usage = parsed.completion, parsed.usage
    assert usage is not None
    assert json.loads(parsed.body) == completion
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 2}'}
    assert (usage.prompt_tokens, usage.completion_tokens) == (15, 7)
    assert completion["usage"]["total_tokens"] == 22


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def test_stream_translation_in_order_with_tool_call_and_usage() -> None:
    events = b"".join(
        [
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {"id": "m1", "model": "claude-x", "usage": {"input_tokens": 12, "output_tokens": 1}},
                },
            ),
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            _sse("ping", {"type": "ping"}),
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
            ),
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
            ),
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "tool_use", "id": "t9", "name": "f"},
                },
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"q":'},
                },
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "1}"},
                },
            ),
            _sse(
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
    )
    translator = ADAPTER.translator(
        from_body(
            {
                "model": "claude",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "x"}],
            }
        ),
        keep_text=True,
    )
    parser = SSEParser()
    frames: list[bytes] = []
    for i in range(0, len(events), 7):  # arbitrary chunk boundaries
        for event in parser.feed(events[i : i + 7]):
            frames.extend(translator.translate(event))
    frames.extend(translator.close())
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Hello"
    assert deltas[3]["tool_calls"][0]["id"] == "t9" and deltas[3]["tool_calls"][0]["function"]["name"] == "f"
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[4:6]) == '{"q":1}'
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "tool_calls"
    ]
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    assert translator.state.finished and translator.state.text == ["Hel", "lo"]
