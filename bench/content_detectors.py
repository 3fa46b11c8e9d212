"""Content detector cost: throughput and per-request time for 1 KB, 10 KB and 100 KB requests.

    .venv/bin/python bench/content_detectors.py

Texts are cut from the labelled synthetic notes (tests/content/notes.jsonl), so they carry identifiers
and near-misses at a realistic density. The scan runs on the request path before the decision (in a
worker thread above 16 KB), so its time is the added latency per request; the output scan of a whole
answer costs the same per byte.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.content.detectors import default_detectors  # noqa: E402
from gateway.content.scan import Scanner  # noqa: E402

NOTES = ROOT / "tests" / "content" / "notes.jsonl"


def main() -> None:
    corpus = " ".join(json.loads(line)["text"] for line in NOTES.read_text().splitlines())
    scanner = Scanner(default_detectors((r"\d{7}", r"[A-Z]{2}\d{6}")))
    print(f"{'size':>7} {'p50 ms':>8} {'p99 ms':>8} {'MB/s':>7}  signals found")
    for size in (1_000, 10_000, 100_000):
        text = (corpus * (size // len(corpus) + 1))[:size]
        runs = 2000 if size <= 10_000 else 200
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            found = scanner.scan_sync([text])
            samples.append((time.perf_counter() - started) * 1000)
        p50, p99 = statistics.median(samples), statistics.quantiles(samples, n=100)[98]
        print(
            f"{size // 1000:>5}KB {p50:8.3f} {p99:8.3f} {size / 1e6 / (p50 / 1000):7.1f}  {sum(found.counts.values())}"
        )


if __name__ == "__main__":
    main()
