"""Properties of the new translators over whole streams: Chat chunks -> Anthropic events keeps every piece
of text and every tool call, in order, in a well-formed event sequence; Bedrock's event-stream frames
decode the same however the bytes are split; arbitrary events end only in BadUpstreamAnswer."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demo.standin_bedrock import event_frame
from gateway.providers.anthropic_messages import MessagesStream
from gateway.providers.base import BadUpstreamAnswer
from gateway.providers.bedrock import BedrockChatStream, EventStreamDecoder
from gateway.providers.messages_openai import OpenAIToMessagesStream
from gateway.providers.openai_responses import ResponsesStream
from gateway.providers.sse import Event, SSEParser

pieces = st.lists(
    st.one_of(
        st.text(min_size=1, max_size=12).map(lambda t: ("text", t)),
        st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=12)).map(lambda c: ("tool", c)),
    ),
    min_size=1,
    max_size=8,
)


def _chunks(parts: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    calls = 0
    for kind, value in parts:
        if kind == "text":
            delta: dict[str, Any] = {"content": value}
        else:
            name, arguments = value
            delta = {
                "tool_calls": [
                    {
                        "index": calls,
                        "id": f"call_{calls}",
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ]
            }
            calls += 1
        out.append({"id": "c", "choices": [{"index": 0, "delta": delta}]})
    out.append({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]})
    out.append({"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(parts)}})
    return out


@settings(max_examples=300, deadline=None)
@given(parts=pieces)
def test_chat_chunks_become_a_well_formed_anthropic_stream(parts: list[tuple[str, Any]]) -> None:
    translator = OpenAIToMessagesStream("gpt-4o", keep_text=False)
    frames: list[bytes] = []
    for chunk in _chunks(parts):
        frames.extend(translator.translate(Event("", json.dumps(chunk), b"")))
    frames.extend(translator.translate(Event("", "[DONE]", b"")))
    frames.extend(translator.close())
    events = [(e.event, json.loads(e.data)) for e in SSEParser().feed(b"".join(frames))]
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop")
    open_block = None
    text, calls = [], []
    for name, data in events:
        if name == "content_block_start":
            assert open_block is None
            open_block = data["index"]
            if data["content_block"]["type"] == "tool_use":
                calls.append([data["content_block"]["name"], ""])
        elif name == "content_block_delta":
            assert data["index"] == open_block
            if data["delta"]["type"] == "text_delta":
                text.append(data["delta"]["text"])
            else:
                calls[-1][1] += data["delta"]["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_block
            open_block = None
    assert "".join(text) == "".join(v for k, v in parts if k == "text")
    assert calls == [[v[0], v[1]] for k, v in parts if k == "tool"]
    final = events[-2][1]
    assert final["usage"]["output_tokens"] == len(parts)
    assert final["delta"]["stop_reason"] == ("tool_use" if calls else "end_turn")
    assert translator.state.finished and translator.state.deltas == len(parts)


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 400), max_size=6),
)
def test_event_stream_frames_decode_the_same_however_split(words: list[str], cuts: list[int]) -> None:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    frames += [event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in words]
    frames += [event_frame("messageStop", {"stopReason": "end_turn"})]
    frames += [
        event_frame(
            "metadata", {"usage": {"inputTokens": 3, "outputTokens": len(words), "totalTokens": 3 + len(words)}}
        )
    ]
    data = b"".join(frames)
    positions = sorted({c % len(data) for c in cuts} | {0, len(data)})
    decoder, translator = EventStreamDecoder(), BedrockChatStream("m", client_wants_usage=True, keep_text=True)
    for start, end in itertools.pairwise(positions):
        for event in decoder.feed(data[start:end]):
            translator.translate(event)
    assert "".join(translator.state.text) == "".join(words)
    assert translator.state.finished and translator.state.usage is not None
    assert translator.state.usage.completion_tokens == len(words)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
event_names = st.sampled_from(
    [
        "",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "response.created",
        "response.output_text.delta",
        "response.completed",
        "error",
        "ping",
    ]
)
typed = st.builds(
    lambda kind, extra: {**(extra if isinstance(extra, dict) else {}), "type": kind},
    event_names,
    json_values,
)


@settings(max_examples=500, deadline=None)
@given(events=st.lists(st.tuples(event_names, typed | json_values | st.text(max_size=10)), max_size=6))
def test_arbitrary_events_end_only_in_bad_upstream_answer(events: list[tuple[str, Any]]) -> None:
    for make in (
        lambda: ResponsesStream(keep_text=True),
        lambda: MessagesStream(keep_text=True),
        lambda: OpenAIToMessagesStream("m", keep_text=True),
    ):
        translator = make()
        try:
            for name, data in events:
                text = data if isinstance(data, str) else json.dumps(data)
                for out in translator.translate(Event(name, text, b"data: x\n\n")):
                    assert isinstance(out, bytes)
        except BadUpstreamAnswer:
            continue
        assert translator.state.deltas >= 0
        usage = translator.state.usage
        assert usage is None or (usage.prompt_tokens >= 0 and usage.completion_tokens >= 0)
