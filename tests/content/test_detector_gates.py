"""The detectors' gates (`digits`, `needs`: what every match must contain) only skip searches that could
find nothing: with and without them, every detector counts and redacts the same, on the labelled notes and
on generated text built from matches of each pattern and the pieces they look for (digit groups in every
script Python calls digits, keywords in odd cases, look-alike letters that fold to ASCII under IGNORECASE)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.content import detectors as det
from gateway.content.detectors import PatternDetector, default_detectors

NOTES = Path(__file__).with_name("notes.jsonl")
MRN_PATTERNS = (r"\d{7}", r"[A-Z]{2}\d{6}")
DETECTORS = [d for d in default_detectors(MRN_PATTERNS) if isinstance(d, PatternDetector)]

PIECES = [
    "SSN",
    "ssn:",
    "MRN",
    "mr#",
    "Med Rec No.",
    "medical record number",
    "record #",
    "Chart No.",
    "CHART #",
    "DOB",
    "date of birth",
    "born on",
    "phone",
    "Call",
    "tel",
    "@",
    "a.b@example.org",
    "St",
    "Ave",
    "P.O. Box",
    "March",
    "Mar.",
    "1957",
    "2026",
    "03/14/",
    "-",
    " ",
    "  ",
    "\n",
    ".",
    ",",
    "#",
    ":",
    "(",
    ")",
    "+1",
    "E11.9",
    "ICD-10",
    "dx",
    "1EG4-TE5-MK73",
    "123-45-6789",
    "1234567893",
    "555",
    "234",
    "5678",
    "\u0661\u0662\u0663",
    "\u0e51\u0e52",
    "\U0001d7d9\U0001d7da",  # digits of other scripts: \d matches them
    "\u0130",
    "\u0131",
    "\u212a",
    "\u017f",
    "\u00df",
    "\u01c5",  # letters with unusual case folding
    "Mr",
    "MEd",
    "ReCoRd",
    "cHaRt",
]
text_strategy = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.from_regex(r"\d{1,12}", fullmatch=True),
        st.text(max_size=6),
        *(st.from_regex(d._pattern) for d in DETECTORS),  # text around a match of each pattern
    ),
    max_size=12,
).map("".join)


def ungated_count(d: PatternDetector, text: str) -> int:
    return sum(1 for m in d._pattern.finditer(text) if d.valid(m))


def ungated_redact(d: PatternDetector, text: str) -> str:
    return d._pattern.sub(lambda m: "[X]" if d.valid(m) else m.group(0), text)


def test_the_gates_agree_with_the_patterns_on_the_labelled_notes() -> None:
    texts = [json.loads(line)["text"] for line in NOTES.read_text().splitlines()]
    for d in DETECTORS:
        for text in texts:
            assert d.count(text) == ungated_count(d, text), (d.name, text)


@settings(max_examples=400, deadline=None)
@given(text_strategy)
def test_the_gates_agree_with_the_patterns_on_generated_text(text: str) -> None:
    for d in DETECTORS:
        assert d.count(text) == ungated_count(d, text), d.name
        assert d.redact(text, "[X]") == ungated_redact(d, text), d.name


@given(st.text(max_size=60))
def test_digit_run_and_lowered_answer_for_the_text_asked_about(text: str) -> None:
    other = text + "9"
    for probe in (text, other, text):  # the one-entry memo never answers for another text
        runs = [len(m) for m in re.findall(r"\d+", probe)]
        assert det.digit_run(probe) == max(runs, default=0)
        assert det.lowered(probe) == probe.lower()


def test_a_gate_skips_the_search() -> None:
    calls = 0

    class Counting(PatternDetector):
        def valid(self, match: re.Match[str]) -> bool:
            nonlocal calls
            calls += 1
            return True

    d = Counting("npi", r"\d{10}", digits=10)
    assert d.count("no long numbers here 123456789") == 0
    assert d.count("x 1234567890 y") == 1
    assert calls == 1
