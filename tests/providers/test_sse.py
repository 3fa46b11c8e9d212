"""SSE parsing by the event-stream rules, across any split of the bytes into network reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.demo.standins import Behavior
from gateway.demo.stream_events import anthropic_events, openai_events
from gateway.providers.sse import MAX_EVENT_BYTES, Event, SSEParser

WORDS = ["Stand-in", "answer:", "all", "good."]
USAGE = {"prompt_tokens": 12, "completion_tokens": 4}
RECORDED = {
    "openai": b"".join(e for _, e in openai_events("gpt-4o", WORDS, USAGE, Behavior())),
    "anthropic": b"".join(e for _, e in anthropic_events("claude", WORDS, USAGE, Behavior())),
}


def _events(chunks: list[bytes]) -> list[tuple[str, str]]:
    parser = SSEParser()
    out: list[Event] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    assert not parser.pending
    return [(e.event, e.data) for e in out]


def _with_endings(stream: bytes, ending: bytes) -> bytes:
    return stream.replace(b"\n", ending)


@pytest.mark.parametrize("kind", list(RECORDED))
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_split_point_of_recorded_streams(kind: str, ending: bytes) -> None:
    stream = _with_endings(RECORDED[kind], ending)
    whole = _events([stream])
    assert len(whole) == (8 if kind == "openai" else 10)
    for cut in range(len(stream) + 1):
        assert _events([stream[:cut], stream[cut:]]) == whole, f"split at byte {cut}"


@pytest.mark.parametrize("kind", list(RECORDED))
@given(data=st.data())
def test_any_split_into_many_reads(kind: str, data: st.DataObject) -> None:
    ending = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    stream = _with_endings(RECORDED[kind], ending)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _events(chunks) == _events([stream])


def test_crlf_split_between_reads_is_one_line_break_not_two() -> None:
    parser = SSEParser()
    events = parser.feed(b"data: a\r") + parser.feed(b"\ndata: b\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [("message", "a\nb")]


def test_lone_cr_line_endings_and_a_leading_bom() -> None:
    events = _events([b"\xef\xbb", b"\xbfevent: x\rdata: 1\r\r: comment\rdata: 2\r\r"])
    assert events == [("x", "1"), ("message", "2")]


def test_events_without_data_are_not_dispatched_and_comments_are_keepalives() -> None:
    assert _events([b": ping\n\nevent: ping\n\nid: 3\n\n"]) == []
    assert _events([b"data\n\n"]) == [("message", "")]  # a field with no colon: empty value


def test_raw_is_normalised_for_pass_through() -> None:
    (event,) = SSEParser().feed(b": c\r\ndata: {}\r\n\r\n")
    assert event.raw == b"data: {}\n\n"


def test_an_event_over_the_limit_is_refused() -> None:
    parser = SSEParser()
    with pytest.raises(ValueError):
        for _ in range(MAX_EVENT_BYTES // 65536 + 2):
            parser.feed(b"data: " + b"x" * 65536 + b"\n")
