from __future__ import annotations

import json

import pytest

from gateway.chat import from_body
from gateway.providers.base import BadUpstreamAnswer
from gateway.providers.openai import OpenAIAdapter, parse_completion
from gateway.providers.sse import SSEParser
from gateway.settings import ProviderSettings

PROVIDER = ProviderSettings(
    name="o", kind="openai", base_url="https://api.example/v1/", models={"gpt-4o": "gpt-4o-2024"}
)


def test_build_sets_provider_model_cap_and_asks_for_stream_usage() -> None:
    request = OpenAIAdapter().build(
        from_body(
            {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}], "temperature": 0.2}
        ),
        PROVIDER,
        "gpt-4o-2024",
        100,
    )
    body = json.loads(request.body)
    assert request.url == "https://api.example/v1/chat/completions"
    assert body["model"] == "gpt-4o-2024" and body["max_tokens"] == 100 and body["temperature"] == 0.2
    assert body["stream_options"] == {"include_usage": True}


def test_o_series_gets_max_completion_tokens() -> None:
    request = OpenAIAdapter().build(
        from_body({"model": "o3", "messages": [{"role": "user", "content": "x"}]}), PROVIDER, "o3-mini", 50
    )
    body = json.loads(request.body)
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {"prompt_tokens": -1, "completion_tokens": 2},
        {"prompt_tokens": "3", "completion_tokens": 2},
        {"prompt_tokens": 10**12, "completion_tokens": 1},
    ],
)
def test_missing_or_absurd_usage_is_not_trusted(usage: object) -> None:
    answer = {"choices": [{"message": {"content": "x"}}], "usage": usage}
    assert parse_completion(json.dumps(answer).encode()).usage is None  # the router counts instead


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"no": "choices"}'])
def test_malformed_completion_is_a_bad_answer(body: bytes) -> None:
    with pytest.raises(BadUpstreamAnswer):
        parse_completion(body)


def test_stream_passes_events_untouched_and_drops_unrequested_usage_chunk() -> None:
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    usage = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    azure_filter = {"id": "", "choices": [], "prompt_filter_results": []}
    raw = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in (azure_filter, chunk, usage)) + b"data: [DONE]\n\n"
    translator = OpenAIAdapter().translator(
        from_body({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}]}), keep_text=False
    )
    frames = [f for e in SSEParser().feed(raw) for f in translator.translate(e)] + translator.close()
    assert frames[0] == f"data: {json.dumps(azure_filter)}\n\n".encode()  # untouched, byte for byte
    assert frames[1] == f"data: {json.dumps(chunk)}\n\n".encode()
    assert frames[2:] == [b"data: [DONE]\n\n"]  # the usage chunk the client did not ask for is gone
    assert translator.state.usage is not None and translator.state.usage.prompt_tokens == 3
    assert translator.state.finished


def test_sse_parser_handles_crlf_comments_and_split_chunks() -> None:
    parser = SSEParser()
    events = parser.feed(b": keep-alive\r\n\r\nevent: x\r\nda") + parser.feed(b"ta: a\r\ndata: b\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [("x", "a\nb")]


@pytest.mark.parametrize(
    "delta", [{"content": True}, {"content": 5}, {"tool_calls": "x"}, 0, "text"], ids=lambda d: repr(d)[:20]
)
def test_stream_chunk_of_the_wrong_types_is_a_bad_answer_never_relayed(delta: object) -> None:
    translator = OpenAIAdapter().translator(
        from_body({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}]}), keep_text=False
    )
    (event,) = SSEParser().feed(f"data: {json.dumps({'choices': [{'delta': delta}]})}\n\n".encode())
    with pytest.raises(BadUpstreamAnswer):
        translator.translate(event)


@pytest.mark.parametrize("message", [{"content": True}, {"content": ["a"]}, "hello", None])
def test_answer_of_the_wrong_types_is_a_bad_answer(message: object) -> None:
    body = json.dumps({"choices": [{"message": message}]}).encode()
    with pytest.raises(BadUpstreamAnswer):
        parse_completion(body)
