"""Scan a request's text for sensitive-data signals: counts per type and the number of characters.

The text never leaves this module: the policy input gets `content.signals` ({type: count}),
`content.chars` and `content.error`. A detector that raises makes the whole scan an error, which the
shipped policy treats as PHI (fail closed), never as clean. Large texts are scanned in a worker thread,
a bounded number at a time, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.content.detectors import Detector, default_detectors

log = logging.getLogger("gateway.content")
OFF_LOOP_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class Signals:
    counts: dict[str, int] = field(default_factory=dict)
    chars: int = 0
    error: bool = False

    def as_input(self) -> dict[str, Any]:
        return {"signals": dict(self.counts), "chars": self.chars, "error": self.error}


class Scanner:
    def __init__(self, detectors: list[Detector], *, off_loop_concurrency: int = 2) -> None:
        self.detectors = detectors
        self._detectors = detectors
        self._off_loop = asyncio.Semaphore(off_loop_concurrency)

    def scan_sync(self, texts: list[str]) -> Signals:
        """Counts over the texts, in pieces of about PIECE_CHARS cut at a line or sentence end: Python's
        regular expressions hold the GIL through a whole search, so a large body scanned in one piece would
        stall the event loop's thread for as long; between pieces the GIL changes hands."""
        text = "\n".join(t for t in texts if t)
        counts = dict.fromkeys((d.name for d in self._detectors), 0)
        try:
            for piece in pieces(text):
                for detector in self._detectors:
                    counts[detector.name] += detector.count(piece)
        except Exception as exc:  # a detector's defect: fail closed (the policy sees error: true)
            log.error("content detector failed", extra={"error_type": type(exc).__name__})
            return Signals({}, len(text), error=True)
        return Signals({k: v for k, v in counts.items() if v}, len(text))

    async def scan(self, texts: list[str]) -> Signals:
        if sum(len(t) for t in texts) > OFF_LOOP_CHARS:
            async with self._off_loop:
                return await asyncio.to_thread(self.scan_sync, texts)
        return self.scan_sync(texts)


PIECE_CHARS = 8_192


def pieces(text: str) -> list[str]:
    """`text` in pieces of at most ~PIECE_CHARS, each cut after a newline or a sentence's ". " when there is
    one in its last quarter (identifiers do not span those), else after a space."""
    if len(text) <= PIECE_CHARS:
        return [text]
    found, start = [], 0
    while start < len(text):
        end = min(start + PIECE_CHARS, len(text))
        if end < len(text):
            floor = start + PIECE_CHARS * 3 // 4
            cut = max(text.rfind("\n", floor, end), text.rfind(". ", floor, end))
            cut = cut if cut > start else text.rfind(" ", floor, end)
            end = cut + 1 if cut > start else end
        found.append(text[start:end])
        start = end
    return found


class Scanners:
    """One scanner per set of MRN patterns (they come with the policy bundle and change with it)."""

    def __init__(self) -> None:
        self._by_patterns: dict[tuple[str, ...], Scanner] = {}

    def get(self, mrn_patterns: tuple[str, ...]) -> Scanner:
        scanner = self._by_patterns.get(mrn_patterns)
        if scanner is None:
            try:
                detectors = default_detectors(mrn_patterns)
            except Exception as exc:  # an invalid pattern in the policy data: every scan fails closed
                log.error("invalid content.mrn_patterns", extra={"error_type": type(exc).__name__})
                detectors = [_Broken()]
            scanner = self._by_patterns[mrn_patterns] = Scanner(detectors)
        return scanner


class _Broken:
    name = "mrn"

    def count(self, text: str) -> int:
        raise ValueError("the policy's MRN patterns do not compile")

    def redact(self, text: str, placeholder: str) -> str:
        raise ValueError("the policy's MRN patterns do not compile")
