"""Detector precision and recall per type on the labelled synthetic notes (tests/content/notes.jsonl, made by
tests/content/make_notes.py), near-misses included; and the detectors' edge cases one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.content.detectors import TYPES, default_detectors, luhn_ok
from gateway.content.scan import Scanner, Scanners

NOTES = Path(__file__).with_name("notes.jsonl")
MRN_PATTERNS = (r"\d{7}", r"[A-Z]{2}\d{6}")  # the shipped policy data's content.mrn_patterns
FLOOR = 0.8  # precision and recall every type must reach on this set (the measured values are printed)


def scores() -> dict[str, tuple[float, float, int]]:
    scanner = Scanner(default_detectors(MRN_PATTERNS))
    tp = dict.fromkeys(TYPES, 0)
    fp = dict.fromkeys(TYPES, 0)
    fn = dict.fromkeys(TYPES, 0)
    for line in NOTES.read_text().splitlines():
        note = json.loads(line)
        found = scanner.scan_sync([note["text"]]).counts
        for kind in TYPES:
            expected, got = note["labels"].get(kind, 0), found.get(kind, 0)
            tp[kind] += min(expected, got)
            fp[kind] += max(0, got - expected)
            fn[kind] += max(0, expected - got)
    return {k: (tp[k] / max(1, tp[k] + fp[k]), tp[k] / max(1, tp[k] + fn[k]), tp[k] + fn[k]) for k in TYPES}


def test_precision_and_recall_per_type() -> None:
    table = scores()
    print("\ntype     precision  recall  labelled")
    for kind, (precision, recall, labelled) in table.items():
        print(f"{kind:<8} {precision:9.3f} {recall:7.3f} {labelled:9d}")
    assert all(labelled > 20 for _, _, labelled in table.values())
    low = {k: v for k, v in table.items() if v[0] < FLOOR or v[1] < FLOOR}
    assert low == {}


@pytest.mark.parametrize(
    ("text", "kind", "count"),
    [
        ("SSN 123-45-6789", "ssn", 1),
        ("ssn: 123456789", "ssn", 1),
        ("123 45 6789", "ssn", 1),
        ("000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000", "ssn", 0),
        ("tracking 123-45-6789-00", "ssn", 0),
        ("NPI 1234567893", "npi", 1),
        ("NPI 1234567890", "npi", 0),
        ("1EG4-TE5-MK73 and 1EG4TE5MK73", "mbi", 2),
        ("1SG4-TE5-MK73", "mbi", 0),  # S is never used in an MBI
        ("DOB: 03/14/1957; born on March 14, 1957", "dob", 2),
        ("admitted 03/14/2026", "dob", 0),
        ("(555) 234-5678, 555.234.5678, +1 555-234-5678", "phone", 3),
        ("123-456-7890 and 555-123-4567", "phone", 0),
        ("a.b@example.org", "email", 1),
        ("@handle and name@ local", "email", 0),
        ("42 Maple Street, 7 N Oak Ave.", "address", 2),
        ("Suite 5, Room 12", "address", 0),
        ("E11.9, dx: I10, ICD-10 J45", "icd10", 3),
        ("panel E11 and vitamin B12", "icd10", 0),
        ("MRN: 1234567 and medical record number AB123456", "mrn", 2),
        ("order #1234567", "mrn", 0),
    ],
)
def test_edge_cases(text: str, kind: str, count: int) -> None:
    found = Scanner(default_detectors(MRN_PATTERNS)).scan_sync([text])
    assert found.counts.get(kind, 0) == count
    assert not found.error


def test_luhn_over_the_80840_prefix() -> None:
    assert luhn_ok("80840" + "1234567893") and not luhn_ok("80840" + "1234567890")


def test_a_failing_detector_or_bad_patterns_fail_closed() -> None:
    broken = Scanners().get(("([unclosed",))
    result = broken.scan_sync(["MRN: 1234567"])
    assert result.error and result.counts == {}
    assert result.as_input() == {"signals": {}, "chars": 12, "error": True}
