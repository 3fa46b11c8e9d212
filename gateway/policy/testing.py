"""`opa test` for compliance engineers without an `opa` binary: same discovery, semantics, output and exit codes.

Discovery (discovery.py) comes from OPA's own parser, as `opa test` finds tests.

A test passes only when it evaluates to boolean `true`; a parameterised test (`test_x[case] if ...`, a
partial object) passes when it has cases and every case is `true`. Undefined or any other value fails; an
evaluation error is an ERROR. Each test runs through one of a handful of fixed queries (one per path depth,
`data[input.k[0]]...`), so the engine prepares a few queries for the whole suite instead of one per test:
memory and time stay flat as suites grow.

Exit codes: 0 all passed; 2 any FAIL or ERROR, or any SKIPPED unless `-z`, or coverage under the
threshold; 1 when the policies do not load or compile, when `--fail-on-empty` finds no test, or when
`--coverage` meets a failing test.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from opa_bindings import OpaError

from gateway.errors import BundleError
from gateway.policy import sources
from gateway.policy.compiler import compile_engine
from gateway.policy.discovery import Discovered, discover, renamed


@dataclass
class Options:
    verbose: bool = False
    coverage: bool = False
    threshold: float = 0.0
    fmt: str = "plain"
    run: str | None = None  # -r/--run: only tests whose `package.name` matches this regular expression
    ignore: list[str] = field(default_factory=list)  # --ignore: file name patterns to leave out
    exit_zero_on_skipped: bool = False  # -z
    fail_on_empty: bool = False


@dataclass
class Result:
    file: str
    row: int
    package: str
    name: str
    outcome: str  # PASS | FAIL | ERROR | SKIPPED
    duration_ns: int
    error: str | None = None
    output: str = ""  # what the test printed
    sub_results: dict[str, bool] = field(default_factory=dict)  # case -> failed, for parameterised tests

    def line(self) -> str:
        if self.outcome == "SKIPPED":
            return f"{self.package}.{self.name}: SKIPPED"
        return f"{self.package}.{self.name}: {self.outcome} ({go_duration(self.duration_ns)})"

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
            out["error"] = {"code": "eval_error", "message": self.error, "location": out["location"]}
        if self.output:
            out["output"] = base64.b64encode(self.output.encode()).decode()  # Go marshals []byte as base64
        if self.sub_results:
            out["sub_results"] = {
                k: {"name": k, "fail": True} if failed else {"name": k} for k, failed in self.sub_results.items()
            }
        return out


# -- running -----------------------------------------------------------------------


def _query(depth: int) -> str:
    return "x := data" + "".join(f"[input.k[{i}]]" for i in range(depth))


def _verdict(value: Any, test: Discovered) -> tuple[bool, dict[str, bool]]:
    """(passed, sub-results) as OPA judges a test's value."""
    if test.partial_object:
        if not isinstance(value, dict) or not value:
            return False, {}
        cases = {str(k): not _all_true(v) for k, v in value.items()}
        return not any(cases.values()), cases
    return value is True, {}


def _all_true(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(_all_true(v) for v in value.values())
    return value is True


def run(
    modules: dict[str, str], data: dict[str, Any], *, coverage: bool, pattern: str | None = None
) -> tuple[list[Result], dict[str, Any] | None]:
    tests = discover(modules)
    if pattern is not None:
        matcher = re.compile(pattern)
        tests = [t for t in tests if matcher.search(f"{t.package}.{t.name}")]
    engine = compile_engine(renamed(modules, tests), data)
    results: list[Result] = []
    covered: dict[str, set[int]] = {}
    uncovered: dict[str, set[int]] = {}
    prints: list[str] = []
    engine.print_handler = lambda message, location: prints.append(str(message))
    try:
        for test in tests:
            if test.skip:
                results.append(Result(test.file, test.row, test.package, test.name, "SKIPPED", 0))
                continue
            prints.clear()
            start = time.perf_counter_ns()
            error, sub = None, dict[str, bool]()
            try:
                bindings = engine.eval_query(_query(len(test.keys)), {"k": test.keys}, coverage=coverage)
                passed, sub = _verdict(bindings[0]["x"], test) if bindings else (False, {})
                outcome = "PASS" if passed else "FAIL"
            except OpaError as exc:
                outcome, error = "ERROR", exc.message
            elapsed = time.perf_counter_ns() - start
            output = "".join(line + "\n" for line in prints)
            results.append(Result(test.file, test.row, test.package, test.name, outcome, elapsed, error, output, sub))
            if coverage and engine.last_coverage:
                _accumulate(engine.last_coverage, covered, uncovered)
    finally:
        engine.close()
    return results, (_coverage_report(covered, uncovered) if coverage else None)


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


def _coverage_report(covered: dict[str, set[int]], uncovered: dict[str, set[int]]) -> dict[str, Any]:
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
    return 100.0 * hit / (hit + miss) if hit + miss else 0.0  # unrounded, as OPA reports it


def go_duration(ns: int) -> str:
    """Go's time.Duration.String() for the durations tests take."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:g}ms"
    return f"{ns / 1_000_000_000:g}s"


# -- reporting ---------------------------------------------------------------------


def report_plain(results: list[Result], out: TextIO, *, verbose: bool) -> None:
    """OPA's pretty report: failing (all with -v) tests by file, their cases, errors and prints; with -v a
    FAILURES section; then the totals, where a parameterised test counts once per case, as OPA counts."""
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
            for case, failed in result.sub_results.items():
                if verbose or failed:
                    out.write(f"  {case}: {'FAIL' if failed else 'PASS'}\n")
            if result.output:
                out.write("\n" + "".join(f"  {line}\n" for line in result.output.strip().splitlines()) + "\n")
        if result.error:
            out.write(f"  {result.error}\n")
    failures = [r for r in results if r.outcome == "FAIL"]
    if failures and verbose:
        out.write("-" * 80 + "\nFAILURES\n" + "-" * 80 + "\n")
        for failure in failures:
            out.write(failure.line() + "\n")
            for case, failed in failure.sub_results.items():
                if failed:
                    out.write(f"  {case}: FAIL\n")
            out.write("\n")
    if dirty:
        out.write("-" * 80 + "\n")
    counts = {"PASS": 0, "FAIL": 0, "SKIPPED": 0, "ERROR": 0}
    for result in results:
        if result.sub_results:
            for failed in result.sub_results.values():
                counts["FAIL" if failed else "PASS"] += 1
        else:
            counts[result.outcome] += 1
    total = sum(counts.values())
    for label, count in counts.items():
        if count:
            out.write(f"{label}: {count}/{total}\n")


def main(paths: list[str], options: Options, *, out: TextIO, err: TextIO) -> int:
    if not 0 <= options.threshold <= 100:
        err.write("--threshold must be between 0 and 100\n")
        return 1
    coverage = options.coverage or options.threshold > 0
    try:
        loaded = sources.load(paths, all_data=True, ignore=options.ignore)
        results, cover = run(loaded.modules, loaded.data, coverage=coverage, pattern=options.run)
    except BundleError as exc:  # OPA's own report when there is one: its header, locations and source lines
        err.write((exc.detail or "\n".join(str(exc).split("; "))).rstrip("\n") + "\n")
        return 1
    except re.error as exc:
        err.write(f"--run: not a regular expression: {exc}\n")
        return 1
    if not results and options.fail_on_empty:
        err.write("no tests found\n")
        return 1
    failed = any(r.outcome in ("FAIL", "ERROR") for r in results)
    skipped = any(r.outcome == "SKIPPED" for r in results) and not options.exit_zero_on_skipped
    if cover is not None:
        if failed:
            report_plain([r for r in results if r.outcome in ("FAIL", "ERROR")], out, verbose=options.verbose)
            return 1
        out.write(json.dumps(cover, indent=2) + "\n")
        if cover["coverage"] < options.threshold:
            err.write(
                f"Code coverage threshold not met: got {cover['coverage']:.2f} instead of {options.threshold:.2f}\n"
            )
            return 2
        return 2 if skipped else 0
    if options.fmt == "json":
        out.write(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    else:
        report_plain(results, out, verbose=options.verbose)
    return 2 if failed or skipped else 0
