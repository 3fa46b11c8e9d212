from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.observe import logs


def _capture() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream, level=logging.DEBUG)
    return stream


def test_library_log_arguments_are_never_interpolated() -> None:
    stream = _capture()
    logging.getLogger("some.library").debug("sending body %s", "PATIENT-TEXT")
    line = json.loads(stream.getvalue())
    assert line["event"] == "sending body %s"
    assert "PATIENT-TEXT" not in stream.getvalue()


def test_exceptions_are_logged_as_type_only() -> None:
    stream = _capture()
    try:
        raise ValueError("PATIENT-TEXT in an exception message")
    except ValueError:
        logging.getLogger("x").exception("failed")
    assert json.loads(stream.getvalue())["exception"] == "ValueError"
    assert "PATIENT-TEXT" not in stream.getvalue()


def test_request_record_has_fixed_fields_and_content_only_at_content_level() -> None:
    stream = _capture()
    record = {key: None for key in logs.REQUEST_FIELDS} | {"extra_field": "PATIENT-TEXT"}
    logs.emit_request(record, log_level="metadata", content={"messages": "PATIENT-TEXT", "completion": "x"})
    logs.emit_request(record, log_level="content", content={"messages": "allowed text", "completion": "y"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first) == list(logs.REQUEST_FIELDS)
    assert second["messages"] == "allowed text" and second["completion"] == "y"
    assert "PATIENT-TEXT" not in stream.getvalue()


def test_uvicorn_access_log_is_off() -> None:
    stream = _capture()
    logging.getLogger("uvicorn.access").info('%s - "%s %s"', "127.0.0.1", "POST", "/v1/chat/completions?key=secret")
    assert stream.getvalue() == ""


# the per-request lines are written straight to the handler's stream (logs.LINES): same bytes, fewer flushes


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def _request(**values: object) -> dict[str, object]:
    return {key: None for key in logs.REQUEST_FIELDS} | values


def test_request_lines_in_one_loop_turn_are_flushed_once_after_it() -> None:
    stream = _CountingStream()
    logs.configure(stream, level=logging.INFO)

    async def finish_together() -> tuple[int, int]:
        for n in range(5):
            logs.emit_request(_request(status=200, request_id=str(n)), log_level="metadata")
        before = stream.flushes
        await asyncio.sleep(0)  # the loop's next turn
        return before, stream.flushes

    before, after = asyncio.run(finish_together())
    assert (before, after) == (0, 1)
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == ["0", "1", "2", "3", "4"]


def test_request_line_outside_a_loop_is_flushed_at_once() -> None:
    stream = _CountingStream()
    logs.configure(stream, level=logging.INFO)
    logs.emit_request(_request(status=200), log_level="metadata")
    assert stream.flushes == 1 and json.loads(stream.getvalue())["status"] == 200


def test_request_lines_follow_the_log_level() -> None:
    stream = io.StringIO()
    logs.configure(stream, level=logging.WARNING)
    logs.emit_request(_request(status=200), log_level="metadata")
    assert stream.getvalue() == ""


def test_request_lines_go_through_logging_when_someone_else_owns_the_handlers() -> None:
    logs.configure(io.StringIO(), level=logging.INFO)
    theirs = io.StringIO()
    handler = logging.StreamHandler(theirs)
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        logs.emit_request(_request(status=201, messages="PATIENT-TEXT"), log_level="metadata")
    finally:
        logging.getLogger().removeHandler(handler)
    line = json.loads(theirs.getvalue())
    assert line["status"] == 201 and list(line) == list(logs.REQUEST_FIELDS)
    assert "PATIENT-TEXT" not in theirs.getvalue()


def test_a_closed_log_stream_never_fails_the_request() -> None:
    stream = io.StringIO()
    logs.configure(stream, level=logging.INFO)
    stream.close()
    logs.emit_request(_request(status=200), log_level="metadata")  # no exception

    async def in_a_loop() -> None:
        logs.emit_request(_request(status=200), log_level="metadata")
        await asyncio.sleep(0)

    asyncio.run(in_a_loop())


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(values=st.fixed_dictionaries({key: _JSONISH for key in logs.REQUEST_FIELDS}), content=_JSONISH)
def test_direct_lines_are_the_bytes_logging_would_write(values: dict[str, object], content: object) -> None:
    direct, through = io.StringIO(), io.StringIO()
    logs.configure(direct, level=logging.INFO)
    logs.emit_request(values, log_level="content", content={"messages": content, "completion": "c"})
    handler = logging.StreamHandler(through)
    handler.setFormatter(logs.JsonFormatter())
    line = {key: values.get(key) for key in logs.REQUEST_FIELDS} | {"messages": content, "completion": "c"}
    record = logging.LogRecord("gateway.request", logging.INFO, "", 0, "request", None, None)
    record.gateway_request = line
    handler.emit(record)
    assert direct.getvalue() == through.getvalue()


def _byte_stream(encoding: str) -> tuple[io.BytesIO, io.TextIOWrapper]:
    raw = io.BytesIO()
    return raw, io.TextIOWrapper(raw, encoding=encoding, write_through=True)


@pytest.mark.parametrize(("encoding", "text"), [("utf-8", "a\ud800b é"), ("latin-1", "日本 é"), ("ascii", "é\udfff")])
def test_a_line_holding_what_the_stream_cannot_encode_is_kept_escaped(encoding: str, text: str) -> None:
    """A client can send a lone surrogate ("\\ud800" in its JSON); at `content` level it reaches the line."""
    raw, stream = _byte_stream(encoding)
    logs.configure(stream, level=logging.INFO)
    logs.emit_request(_request(status=200), log_level="content", content={"messages": text, "completion": "ok"})
    line = json.loads(raw.getvalue().decode(encoding))
    assert line["status"] == 200 and line["messages"] == text


def test_a_surrogate_in_a_line_through_logging_is_kept_too() -> None:
    raw, stream = _byte_stream("utf-8")
    logs.configure(io.StringIO(), level=logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)  # someone else's handler: the logging path
    try:
        logs.emit_request(_request(status=201), log_level="content", content={"messages": "x\ud800", "completion": ""})
    finally:
        logging.getLogger().removeHandler(handler)
    assert json.loads(raw.getvalue().decode())["messages"] == "x\ud800"
