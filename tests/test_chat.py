from __future__ import annotations

from typing import Any

import pytest

from gateway.chat import from_body, parse
from gateway.errors import InvalidRequest

OK: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "UTF-8"),
        (b"{", "valid JSON"),
        (b"[]", "JSON object"),
        (b'{"messages": []}', "model is required"),
    ],
)
def test_body_level_errors(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse(raw)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": 1}]}]}, "messages[0].tool_calls"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"n": 2}, "n"),
        ({"top_p": 2}, "top_p"),
        ({"stop": [1]}, "stop"),
        ({"tools": [{"type": "code"}]}, "tools"),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options"),
    ],
)
def test_parameter_errors_name_the_parameter_and_never_its_value(change: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        from_body({**OK, **change})
    assert info.value.param == param
    assert "wizard" not in info.value.message


def test_valid_request_fields() -> None:
    request = from_body({**OK, "stream": True, "stream_options": {"include_usage": True}, "max_completion_tokens": 9})
    assert request.stream and request.include_usage and request.max_tokens == 9


def test_assistant_message_may_have_null_content() -> None:
    from_body({**OK, "messages": [{"role": "assistant", "content": None}, {"role": "user", "content": "x"}]})
