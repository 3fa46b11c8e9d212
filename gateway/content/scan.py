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
        text = "\n".join(t for t in texts if t)
        try:
            counts = {d.name: d.count(text) for d in self._detectors}
        except Exception as exc:  # a detector's defect: fail closed (the policy sees error: true)
            log.error("content detector failed", extra={"error_type": type(exc).__name__})
            return Signals({}, len(text), error=True)
        return Signals({k: v for k, v in counts.items() if v}, len(text))

    async def scan(self, texts: list[str]) -> Signals:
        if sum(len(t) for t in texts) > OFF_LOOP_CHARS:
            async with self._off_loop:
                return await asyncio.to_thread(self.scan_sync, texts)
        return self.scan_sync(texts)


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
