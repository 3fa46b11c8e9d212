"""JSON-lines logs on stdout that cannot carry content unless the policy said `content`.

How leaks are prevented, not just avoided:
- A log record's arguments are never interpolated (a library's `log.info("%s", body)`
  prints only its template), except in a short list of uvicorn's startup templates
  whose arguments are a process id or the listening address. No request's path or
  query string is ever interpolated (WebSockets are off; see frontdoor.py).
- Exceptions are logged as their type name; their text and traceback never are.
- uvicorn's access log is off (it prints paths and client addresses); aiohttp's
  client logs and asyncio's "exception never retrieved" go through the same formatter.
- Uncaught exceptions (any thread) print their type only.
- The one `request` record per request has a fixed field list; `messages` and
  `completion` are added only when the decision's log_level is `content`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

import orjson

REQUEST_FIELDS = (
    "ts",
    "request_id",
    "decision_id",
    "policy_revision",
    "team",
    "use_case",
    "data_classification",
    "provider",
    "model",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "upstream_latency_ms",
    "attempts",
    "stream",
    "log_level",
)
CONTENT_FIELDS = ("messages", "completion")
_SAFE_EXTRAS = (
    "error_type",
    "error_code",
    "policy_revision",
    "reason",
    "provider",
    "state",
    "revision",
    "from_state",
    "to_state",
)
_ARGS_ALLOWED = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "Uvicorn running on unix socket %s (Press CTRL+C to quit)",
        "Uvicorn running on socket %s (Press CTRL+C to quit)",
    }
)
ACCESS_LOGGER = "gateway.request"
_REQUEST_LOGGER = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        request = getattr(record, "gateway_request", None)
        if isinstance(request, dict):
            return _line(request)
        message = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        if record.args and record.name == "uvicorn.error" and message in _ARGS_ALLOWED:
            with contextlib.suppress(TypeError, ValueError):
                message = message % record.args
        line: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": message,
        }
        for key in _SAFE_EXTRAS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return _line(line)


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)  # json.dumps: one per call
_ASCII = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str)


def _line(value: dict[str, Any]) -> str:
    """A JSON line that any UTF-8 stream can take. orjson first (the request line is written for every
    request); what it refuses goes through `json`: a big integer, a non-string key, or a lone surrogate a
    client sent as "\\ud800", logged at `content` level, which is then \\u-escaped with all the rest
    (written as it was, such a line failed in the stream and the request's record was lost)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        pass
    text = _JSON.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ASCII.encode(value)
    return text


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Lines:
    """The per-request records (request, decision) written straight to the JSON handler's stream: the same
    bytes the logging machinery would write, without its record, filter and handler chain per line, and
    flushed once per event-loop turn rather than once per line (one write for the lines of the requests
    that finished together). Whenever the root logger's handlers are not the ones configure() installed
    (a test's capture, an embedding application's own setup), lines go through `logging` as before."""

    def __init__(self) -> None:
        self.handler: logging.StreamHandler[IO[str]] | None = None
        self._handlers: list[logging.Handler] = []
        self._due: set[asyncio.AbstractEventLoop] = set()

    def install(self, handler: logging.StreamHandler[IO[str]]) -> None:
        self.handler = handler
        self._handlers = [handler]

    def write(self, logger: logging.Logger, line: dict[str, Any]) -> None:
        """One JSON line, at INFO, as `logger` would have written it."""
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = self.handler
        if handler is None or logging.root.handlers != self._handlers or not logger.propagate or logger.handlers:
            logger.info("request", extra={"gateway_request": line})
            return
        text = _line(line) + "\n"
        # a closed or broken stream never fails the request (logging's handlers swallow it the same way)
        with handler.lock or contextlib.nullcontext(), contextlib.suppress(OSError, ValueError):
            try:
                handler.stream.write(text)
            except UnicodeEncodeError:  # a stream in another encoding than UTF-8: escaped, the line is kept
                handler.stream.write(_ASCII.encode(line) + "\n")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: at once, as the handler would
            handler.flush()
            return
        if loop not in self._due:
            self._due.add(loop)
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due.discard(loop)
        if self.handler is not None:
            with contextlib.suppress(OSError, ValueError):
                self.handler.flush()


LINES = _Lines()


def configure(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    # no line carries the caller's file, thread or process: skip collecting them for every record (the
    # logging HOWTO's "Optimization"; finding the caller walks the stack)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    LINES.install(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate, access.disabled = [], False, True
    # botocore logs canonical requests (signed headers, a session token among them) at DEBUG
    for noisy in ("aiohttp.access", "aiohttp.server", "httpx", "httpcore", "openai", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(
        json.dumps(
            {"ts": _iso(time.time()), "level": "critical", "event": "uncaught exception", "exception": kind.__name__}
        )
        + "\n"
    )


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    _excepthook(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


def emit_request(record: dict[str, Any], *, log_level: str, content: dict[str, Any] | None = None) -> None:
    """Write the one request record; content fields only when the policy's log level is `content`."""
    line = {key: record.get(key) for key in REQUEST_FIELDS}
    if log_level == "content" and content:
        line.update({key: content.get(key) for key in CONTENT_FIELDS})
    LINES.write(_REQUEST_LOGGER, line)


def now_iso() -> str:
    return _iso(time.time())
