from __future__ import annotations

import io
import json
import logging

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
