"""Content detectors: what kinds of sensitive data a request's text carries, as counts per type, never spans.

    ssn      US Social Security numbers, 123-45-6789 or 123 45 6789 (or 9 digits after "SSN"), without the
             ranges the SSA never issues (area 000, 666, 900-999; group 00; serial 0000)
    mrn      medical record numbers, by the organisation's own patterns (policy data content.mrn_patterns),
             each a regular expression; a match needs "MRN", "MR#", "medical record", "med rec", "record #"
             or "chart no." right before it (an order number of the same shape is not an MRN)
    npi      National Provider Identifiers: 10 digits starting 1 or 2 whose Luhn check over "80840" + the
             first nine digits gives the tenth
    mbi      Medicare Beneficiary Identifiers: 11 characters in CMS's position rules (no S, L, O, I, B, Z)
    dob      dates of birth: a date within a few words after "DOB", "date of birth", "born" or "birth date"
    phone    North American phone numbers (area and exchange not starting 0 or 1): with separators, or ten
             digits right after "phone", "mobile", "cell", "tel", "call" or "contact"
    email    e-mail addresses
    address  street addresses (a house number, a street name and a street type: St, Ave, Road, ...) and PO boxes
    icd10    ICD-10-CM codes: letter, two digits and a dotted extension (E11.9), or the bare code right after
             "ICD", "ICD-10", "dx" or "diagnosis"

Every detector is a `Detector` (name, `count(text) -> int`), so an organisation can add its own, Microsoft
Presidio's for instance (`PresidioDetector`, used only when presidio-analyzer is installed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

TYPES = ("ssn", "mrn", "npi", "mbi", "dob", "phone", "email", "address", "icd10")


class Detector(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def redact(self, text: str, placeholder: str) -> str:
        """`text` with every span this detector counts replaced by `placeholder`."""
        ...


class PatternDetector:
    """Matches of one regular expression, each kept only when `valid(match)` says so.

    `digits` and `needs` are what every match must contain, checked before the pattern runs: a run of at
    least `digits` digits (`\\d`, as the patterns mean it), one of the strings `needs` (the text compared
    lower-cased). They only skip a search that could find nothing: most text has no four digits in a row,
    and one pass that finds the digit runs (shared by every detector, see `digit_run`) costs a fraction of
    a detector's search (tests/content/test_detector_gates.py: the counts with and without them agree)."""

    def __init__(
        self, name: str, pattern: str, *, flags: int = 0, digits: int = 0, needs: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self._pattern = re.compile(pattern, flags)
        self._digits = digits
        self._needs = needs

    def valid(self, match: re.Match[str]) -> bool:
        return True

    def may_match(self, text: str) -> bool:
        if self._digits and digit_run(text) < self._digits:
            return False
        return not self._needs or any(n in lowered(text) for n in self._needs)

    def count(self, text: str) -> int:
        if not self.may_match(text):
            return 0
        return sum(1 for m in self._pattern.finditer(text) if self.valid(m))

    def redact(self, text: str, placeholder: str) -> str:
        if not self.may_match(text):
            return text
        return self._pattern.sub(lambda m: placeholder if self.valid(m) else m.group(0), text)


_DIGIT_RUNS = re.compile(r"\d+")
_last_run: tuple[str, int] = ("", 0)
_last_lowered: tuple[str, str] = ("", "")


def digit_run(text: str) -> int:
    """The longest run of digits in `text`, remembered for the last text asked about: the detectors of one
    scan ask about the same piece in turn. (A tuple swapped whole: threads scanning at once only miss.)"""
    global _last_run
    last = _last_run
    if last[0] is text:
        return last[1]
    run = max(map(len, _DIGIT_RUNS.findall(text)), default=0)
    _last_run = (text, run)
    return run


def lowered(text: str) -> str:
    """`text.lower()`, remembered for the last text asked about (as `digit_run`)."""
    global _last_lowered
    last = _last_lowered
    if last[0] is text:
        return last[1]
    low = text.lower()
    _last_lowered = (text, low)
    return low


class SSN(PatternDetector):
    def __init__(self) -> None:
        super().__init__(
            "ssn",
            r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])|(?i:\bSSN\b[#:\s]{0,4})(\d{3})(\d{2})(\d{4})\b",
            digits=4,
        )

    def valid(self, match: re.Match[str]) -> bool:
        area, group, serial = (match.group(1), match.group(3), match.group(4))
        if area is None:
            area, group, serial = match.group(5), match.group(6), match.group(7)
        return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


class NPI(PatternDetector):
    def __init__(self) -> None:
        super().__init__("npi", r"(?<!\d)([12]\d{9})(?!\d)", digits=10)

    def valid(self, match: re.Match[str]) -> bool:
        return luhn_ok("80840" + match.group(1))


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_MBI_ALPHA = "AC-HJKMNP-RT-Y"
MBI_PATTERN = (
    rf"(?<![A-Za-z0-9])[1-9][{_MBI_ALPHA}][{_MBI_ALPHA}0-9]\d-?[{_MBI_ALPHA}][{_MBI_ALPHA}0-9]\d-?"
    rf"[{_MBI_ALPHA}][{_MBI_ALPHA}]\d\d(?![A-Za-z0-9])"
)
MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
DATE = (
    r"(?:\d{1,2}[/-]\d{1,2}[/-](?:19|20)?\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}"
    rf"|{MONTHS}\.? \d{{1,2}},? (?:19|20)\d{{2}}|\d{{1,2}} {MONTHS} (?:19|20)\d{{2}})"
)
STREET_TYPES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Terrace|Way|Parkway|Pkwy|"
    "Circle|Cir|Highway|Hwy"
)


def default_detectors(mrn_patterns: Iterable[str] = ()) -> list[Detector]:
    found: list[Detector] = [
        SSN(),
        NPI(),
        PatternDetector("mbi", MBI_PATTERN, digits=2),
        PatternDetector(
            "dob",
            rf"(?i:\b(?:DOB|D\.O\.B\.|date of birth|birth ?date|born(?: on)?)\b[\s:,-]{{0,4}}(?:\w+\s){{0,2}}){DATE}",
            digits=2,  # every DATE ends in a two-digit year or day
        ),
        PatternDetector(
            "phone",
            r"(?<![\d-])(?:\+?1[\s.-]?)?(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[\s.-])[2-9]\d{2}[\s.-]\d{4}(?![\d-])"
            r"|(?i:\b(?:phone|mobile|cell|tel(?:ephone)?|call|contact)\b\D{0,12})(?<!\d)[2-9]\d{2}[2-9]\d{6}(?!\d)",
            digits=4,
        ),
        PatternDetector(
            "email",
            r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b",
            needs=("@",),
        ),
        PatternDetector(
            "address",
            rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){{1,3}}(?:{STREET_TYPES})\b\.?"
            r"|(?i:\bP\.?\s?O\.?\s*Box\s+\d{1,6}\b)",
            digits=1,
        ),
        PatternDetector(
            "icd10",
            r"\b[A-TV-Z]\d[0-9AB]\.[0-9A-TV-Z]{1,4}\b|(?i:\b(?:ICD(?:-?10)?(?:-CM)?|dx|diagnosis)\b[\s:#-]{1,4})[A-TV-Z]\d[0-9AB]\b",
            digits=1,
        ),
    ]
    patterns = list(mrn_patterns)
    if patterns:
        joined = "|".join(f"(?:{p})" for p in patterns)
        context = r"\b(?:MRN|MR\s?#|med(?:ical)? rec(?:ord)?(?: number| no\.?)?|record #|chart (?:no\.?|number|#))"
        # every match starts with its context, which holds one of `needs`
        needs = ("mr", "med", "record", "chart")
        found.append(PatternDetector("mrn", rf"(?i:{context}\s*[:#]?\s*)(?:{joined})", needs=needs))
    return found


class PresidioDetector:
    """Microsoft Presidio's analyzer for one entity type, when presidio-analyzer is installed (not a default
    dependency): counts of its results above `threshold`."""

    def __init__(self, name: str, entity: str, *, threshold: float = 0.5) -> None:
        from presidio_analyzer import AnalyzerEngine  # type: ignore[import-not-found]

        self.name = name
        self._entity = entity
        self._threshold = threshold
        self._engine = AnalyzerEngine()

    def _spans(self, text: str) -> list[tuple[int, int]]:
        results = self._engine.analyze(text=text, entities=[self._entity], language="en")
        return [(r.start, r.end) for r in results if r.score >= self._threshold]

    def count(self, text: str) -> int:
        return len(self._spans(text))

    def redact(self, text: str, placeholder: str) -> str:
        for start, end in sorted(self._spans(text), reverse=True):
            text = text[:start] + placeholder + text[end:]
        return text
