"""`opa test` for compliance engineers without an `opa` binary: same discovery, output and exit codes.

Discovery: every rule named `test_*` in every package is a test; `todo_test_*`
is reported SKIPPED. A test passes when its value is defined and not false,
fails when undefined or false, and errors when evaluation raises.
Exit codes: 0 all passed, 2 any FAIL or ERROR (or coverage under the
threshold), 1 when the policies do not load or compile.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, TextIO

from opa_bindings import OpaError

from gateway.errors import BundleError
from gateway.policy import sources
from gateway.policy.compiler import compile_engine

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^((?:todo_)?test_\w+)\b", re.MULTILINE)


@dataclass
class Result:
    file: str
    row: int
    package: str
    name: str
    outcome: str  # PASS | FAIL | ERROR | SKIPPED
    duration_ns: int
    error: str | None = None

    def line(self) -> str:
        if self.outcome == "SKIPPED":
            return f"{self.package}.{self.name}: SKIPPED"
        return f"{self.package}.{self.name}: {self.outcome} ({_go_duration(self.duration_ns)})"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "location": {"file": self.file, "row": self.row, "col": 1},
            "package": self.package,
            "name": self.name,
            "duration": self.duration_ns,
        }
        if self.outcome == "FAIL":
            out["fail"] = True
        if self.outcome == "SKIPPED":
            out["skip"] = True
        if self.error:
            out["error"] = {"code": "eval_error", "message": self.error}
        return out


@dataclass
class Discovered:
    file: str
    row: int
    package: str
    name: str


def discover(modules: dict[str, str]) -> list[Discovered]:
    found: list[Discovered] = []
    for file, source in modules.items():
        package = _PACKAGE.search(source)
        if not package:
            continue
        seen: set[str] = set()
        for match in _TEST_RULE.finditer(source):
            name = match.group(1)
            if name in seen:
                continue
            seen.add(name)
            row = source.count("\n", 0, match.start()) + 1
            found.append(Discovered(file, row, f"data.{package.group(1)}", name))
    return found


def run(modules: dict[str, str], data: dict[str, Any], *, coverage: bool) -> tuple[list[Result], dict[str, Any] | None]:
    engine = compile_engine(modules, data)
    results: list[Result] = []
    covered: dict[str, set[int]] = {}
    uncovered: dict[str, set[int]] = {}
    try:
        for test in discover(modules):
            if test.name.startswith("todo_"):
                results.append(Result(test.file, test.row, test.package, test.name, "SKIPPED", 0))
                continue
            start = time.perf_counter_ns()
            try:
                bindings = engine.eval_query(f"{test.package}.{test.name}", coverage=coverage)
                outcome, error = ("PASS" if bindings else "FAIL"), None
            except OpaError as exc:
                outcome, error = "ERROR", exc.message
            results.append(
                Result(test.file, test.row, test.package, test.name, outcome, time.perf_counter_ns() - start, error)
            )
            if coverage and engine.last_coverage:
                _accumulate(engine.last_coverage, covered, uncovered)
    finally:
        engine.close()
    return results, (_coverage_report(modules, covered, uncovered) if coverage else None)


def _accumulate(report: dict[str, Any], covered: dict[str, set[int]], uncovered: dict[str, set[int]]) -> None:
    for file, info in (report.get("files") or {}).items():
        for key, target in (("covered", covered), ("not_covered", uncovered)):
            rows = target.setdefault(file, set())
            for span in info.get(key) or []:
                rows.update(range(span["start"]["row"], span["end"]["row"] + 1))


def _spans(rows: set[int]) -> list[dict[str, dict[str, int]]]:
    spans: list[dict[str, dict[str, int]]] = []
    for row in sorted(rows):
        if spans and spans[-1]["end"]["row"] == row - 1:
            spans[-1]["end"]["row"] = row
        else:
            spans.append({"start": {"row": row}, "end": {"row": row}})
    return spans


def _coverage_report(
    modules: dict[str, str], covered: dict[str, set[int]], uncovered: dict[str, set[int]]
) -> dict[str, Any]:
    files: dict[str, Any] = {}
    total_covered = total_uncovered = 0
    for file in sorted(set(covered) | set(uncovered)):
        hit = covered.get(file, set())
        miss = uncovered.get(file, set()) - hit
        entry: dict[str, Any] = {"covered_lines": len(hit), "not_covered_lines": len(miss)}
        if hit:
            entry["covered"] = _spans(hit)
        if miss:
            entry["not_covered"] = _spans(miss)
        entry["coverage"] = _percent(len(hit), len(miss))
        files[file] = entry
        total_covered += len(hit)
        total_uncovered += len(miss)
    return {
        "files": files,
        "covered_lines": total_covered,
        "not_covered_lines": total_uncovered,
        "coverage": _percent(total_covered, total_uncovered),
    }


def _percent(hit: int, miss: int) -> float:
    return round(100.0 * hit / (hit + miss), 2) if hit + miss else 0.0


def _go_duration(ns: int) -> str:
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:g}ms"
    return f"{ns / 1_000_000_000:g}s"


def report_plain(results: list[Result], out: TextIO, *, verbose: bool) -> None:
    dirty = False
    last_file = ""
    for result in results:
        if verbose or result.outcome != "PASS":
            if last_file and last_file != result.file:
                out.write("\n")
            out.write(f"{result.file}:{result.row}:\n")
            last_file = result.file
            out.write(result.line() + "\n")
            dirty = True
        if result.error:
            out.write(f"  {result.error}\n")
    if dirty:
        out.write("-" * 80 + "\n")
    total = len(results)
    for label, outcome in (("PASS", "PASS"), ("FAIL", "FAIL"), ("SKIPPED", "SKIPPED"), ("ERROR", "ERROR")):
        count = sum(1 for r in results if r.outcome == outcome)
        if count:
            out.write(f"{label}: {count}/{total}\n")


def main(
    paths: list[str], *, verbose: bool, coverage: bool, threshold: float, fmt: str, out: TextIO, err: TextIO
) -> int:
    try:
        loaded = sources.load(paths)
        results, cover = run(loaded.modules, loaded.data, coverage=coverage or threshold > 0)
    except BundleError as exc:
        for line in str(exc).split("; "):
            err.write(line + "\n")
        return 1
    failed = any(r.outcome in ("FAIL", "ERROR") for r in results)
    if coverage and cover is not None:
        if failed:
            report_plain([r for r in results if r.outcome in ("FAIL", "ERROR")], out, verbose=verbose)
            return 2
        if cover["coverage"] < threshold:
            err.write(f"Code coverage threshold not met: got {cover['coverage']:.2f} instead of {threshold:.2f}\n")
            return 2
        out.write(json.dumps(cover, indent=2) + "\n")
        return 0
    if fmt == "json":
        out.write(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    else:
        report_plain(results, out, verbose=verbose)
    if failed:
        return 2
    if cover is not None and cover["coverage"] < threshold:
        err.write(f"Code coverage threshold not met: got {cover['coverage']:.2f} instead of {threshold:.2f}\n")
        return 2
    return 0
