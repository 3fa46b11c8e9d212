"""`opa test` for compliance engineers without an `opa` binary: same discovery, semantics, output and exit codes.

Discovery (discovery.py) comes from OPA's own parser, as `opa test` finds tests.

A test passes only when it evaluates to boolean `true`; a parameterised test (`test_x[case] if ...`, a
partial object) passes when it has cases and every case is `true`. Undefined or any other value fails; an
evaluation error is an ERROR, with OPA's error object (code, message, location). A built-in that fails
(`to_number("x")`) makes its expression undefined in `opa test`; the embedded engine stops the evaluation
instead (its strict mode is fixed), so such a test is a FAIL with a note naming the built-in error: the same
outcome as OPA's wherever the undefined expression fails the test, a FAIL where OPA would pass it (under
`not`, in an `else`), never a false PASS. A test running past `--timeout` (OPA's 5s) is an ERROR; its
evaluation is abandoned on a daemon thread and the rest of the suite continues on a fresh engine.

Each test runs through one of a handful of fixed queries (one per path depth,
`data[input.k[0]]...`), so the engine prepares a few queries for the whole suite instead of one per test:
memory and time stay flat as suites grow.

Exit codes: 0 all passed; 2 any FAIL or ERROR, or any SKIPPED unless `-z`, or coverage under the
threshold; 1 when the policies do not load or compile, when `--fail-on-empty` finds no test, or when
`--coverage` meets a failing test.
"""

from __future__ import annotations

import base64
import functools
import json
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from opa_bindings import OpaEngine, OpaError

from gateway.errors import BundleError
from gateway.policy import bundle, sources, trace, v0
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
    timeout_ns: int = 5_000_000_000  # --timeout per test, OPA's default; 0: none
    bundle: bool = False  # -b: each path is a bundle (folder or .tar.gz)
    v0_compatible: bool = False
    explain: str = "default"  # traces of failing tests with -v: fails and notes (default), fails, notes, full
    var_values: bool = False


@dataclass
class Result:
    file: str
    row: int
    package: str
    name: str
    outcome: str  # PASS | FAIL | ERROR | SKIPPED
    duration_ns: int
    error: dict[str, Any] | None = None  # OPA's error object: code, message, location
    output: str = ""  # what the test printed
    sub_results: dict[str, bool] = field(default_factory=dict)  # case -> failed, for parameterised tests
    note: str = ""  # shown under the test in the plain report (a built-in error made it fail)
    trace: list[str] = field(default_factory=list)  # with -v, a failing test's trace as OPA prints it

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
            out["error"] = self.error
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


def _evaluate(engine: OpaEngine, *, query: str, keys: list[str], coverage: bool) -> Any:
    return engine.eval_query(query, {"k": keys}, coverage=coverage)


def _traced(engine: OpaEngine, *, query: str, keys: list[str]) -> list[dict[str, Any]]:
    engine.eval_query(query, {"k": keys}, trace=True)
    return list(engine.last_trace or [])


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
    modules: dict[str, str],
    data: dict[str, Any],
    *,
    coverage: bool,
    pattern: str | None = None,
    timeout_ns: int = 0,
    explain: str | None = None,  # traces of failing tests: "default" (-v), fails, notes, full
    var_values: bool = False,
) -> tuple[list[Result], dict[str, Any] | None]:
    tests = discover(modules)
    if pattern is not None:
        matcher = re.compile(pattern)
        tests = [t for t in tests if matcher.search(f"{t.package}.{t.name}")]
    sources = renamed(modules, tests)
    packages = trace.packages_of(sources)
    results: list[Result] = []
    covered: dict[str, set[int]] = {}
    uncovered: dict[str, set[int]] = {}
    prints: list[str] = []
    worker: _Worker | None = _Worker(compile_engine(sources, data), prints)  # compile errors surface now
    try:
        for test in tests:
            if test.skip:
                results.append(Result(test.file, test.row, test.package, test.name, "SKIPPED", 0))
                continue
            if worker is None:
                worker = _Worker(compile_engine(sources, data), prints)
            prints.clear()
            start = time.perf_counter_ns()
            result = Result(test.file, test.row, test.package, test.name, "FAIL", 0)
            job = functools.partial(_evaluate, query=_query(len(test.keys)), keys=test.keys, coverage=coverage)
            try:
                bindings = worker.call(job, timeout_ns)
                passed, result.sub_results = _verdict(bindings[0]["x"], test) if bindings else (False, {})
                result.outcome = "PASS" if passed else "FAIL"
                if not passed and explain is not None:
                    events = worker.call(functools.partial(_traced, query=job.keywords["query"], keys=test.keys), 0)
                    shown = trace.lineage(events, explain)
                    result.trace = trace.pretty(
                        shown, test=f"{test.package}.{test.name}", packages=packages, var_values=var_values
                    )
            except OpaError as exc:
                error = opa_error(exc.message, test)
                if error["code"] == "eval_builtin_error":
                    result.note = _BUILTIN_NOTE.format(**error)
                else:
                    result.error = error
            except TimeoutError:
                result.outcome = "ERROR"
                result.error = {"code": "eval_cancel_error", "message": "caller cancelled query execution"}
                worker.abandon()  # still evaluating: the next test gets a fresh engine
                worker = None
            if result.error:
                result.outcome = "ERROR"
            result.duration_ns = time.perf_counter_ns() - start
            result.output = "".join(line + "\n" for line in prints)
            results.append(result)
            if coverage and worker is not None and worker.engine.last_coverage:
                _accumulate(worker.engine.last_coverage, covered, uncovered)
    finally:
        if worker is not None:
            worker.close()
    return results, (_coverage_report(covered, uncovered) if coverage else None)


_BUILTIN_NOTE = (
    "{message} ({location[file]}:{location[row]}): a built-in error; opa test makes that expression undefined, "
    "the embedded engine stops the test there"
)
_LOCATED_ERROR = re.compile(r"^(?P<file>.+?):(?P<row>\d+): (?P<code>[a-z_]+): (?P<message>.*)$", re.DOTALL)


def opa_error(message: str, test: Discovered) -> dict[str, Any]:
    """OPA's error object from the engine's `file:row: code: message`; unlocated, the test's own location."""
    first = message.split("\n", 1)[0] if message.count(": eval_") > 1 else message
    match = _LOCATED_ERROR.match(first)
    if match is None:
        return {"code": "eval_error", "message": message, "location": {"file": test.file, "row": test.row}}
    location = {"file": match["file"], "row": int(match["row"])}
    return {"code": match["code"], "message": match["message"], "location": location}


class _Worker:
    """One engine and the daemon thread that evaluates on it, so a test past its timeout can be left running
    (an evaluation inside the OPA library cannot be interrupted) without holding up the suite or the exit."""

    def __init__(self, engine: OpaEngine, prints: list[str]) -> None:
        self.engine = engine
        engine.print_handler = lambda message, location: prints.append(str(message))
        self._jobs: queue.SimpleQueue[tuple[Callable[[OpaEngine], Any], queue.SimpleQueue[Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._loop, name="policy-test", daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, answer = job
            try:
                answer.put((True, fn(self.engine)))
            except BaseException as exc:  # handed to the caller
                answer.put((False, exc))
        self.engine.close()

    def call(self, fn: Callable[[OpaEngine], Any], timeout_ns: int) -> Any:
        answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs.put((fn, answer))
        try:
            ok, value = answer.get(timeout=timeout_ns / 1e9 if timeout_ns > 0 else None)
        except queue.Empty:
            raise TimeoutError from None
        if not ok:
            raise value
        return value

    def abandon(self) -> None:
        self.engine.print_handler = lambda message, location: None
        self._jobs.put(None)  # the engine is closed once the running evaluation ends

    def close(self) -> None:
        self._jobs.put(None)


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


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9}
_GO_UNITS["h"] = 3600 * 10**9
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds: `5s`, `1m30s`, `250ms`, `0`."""
    body = text.strip()
    if body == "0":
        return 0
    if not body or _GO_PART.sub("", body) != "":
        raise ValueError(f"invalid duration {text!r} (Go syntax: 5s, 500ms, 1m30s)")
    return int(sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(body)))


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
    """OPA's pretty report: with -v and failures first a FAILURES section (each failing test, its cases and
    trace) and SUMMARY; then failing (all with -v) tests by file, their cases, prints and errors; then the
    totals, where a parameterised test counts once per case, as OPA counts."""
    hl = "-" * 80 + "\n"
    failures = [r for r in results if r.outcome == "FAIL"]
    if failures and verbose:
        out.write("FAILURES\n" + hl)
        for failure in failures:
            out.write(failure.line() + "\n")
            for case, failed in failure.sub_results.items():
                if failed:
                    out.write(f"  {case}: FAIL\n")
            out.write("\n" + "".join(f"  {row}\n" for row in failure.trace) + "\n")
        out.write("SUMMARY\n" + hl)
    dirty = False
    last_file = ""
    for result in results:
        if verbose or result.outcome != "PASS":
            if last_file and last_file != result.file:
                out.write("\n")
            if result.file != last_file:
                out.write(f"{result.file}:\n")
            last_file = result.file
            out.write(result.line() + "\n")
            dirty = True
            for case, failed in result.sub_results.items():
                if verbose or failed:
                    out.write(f"  {case}: {'FAIL' if failed else 'PASS'}\n")
            if result.output:
                out.write("\n" + "".join(f"  {line}\n" for line in result.output.strip().splitlines()) + "\n")
        if result.error:
            out.write(f"  {_error_line(result.error)}\n")
        if result.note:
            out.write(f"  {result.note}\n")
    if dirty:
        out.write(hl)
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


def load(paths: list[str], options: Options, *, all_data: bool = True) -> sources.Sources:
    """The paths as `opa test` (and `opa check`) read them: files and folders (every data file for tests), or
    with -b bundles (a folder or a .tar.gz: its manifest's roots and rego_version, only data.json/data.yaml),
    v0 made v1 on request."""
    if options.bundle:
        loaded = sources.Sources()
        for path in paths:
            read = bundle.read_path(path)
            loaded.modules.update(read.modules)
            bundle.merge_into(loaded.data, read.data)
    else:
        loaded = sources.load(paths, all_data=all_data, ignore=options.ignore)
    if options.v0_compatible:
        loaded.modules = {name: v0.to_v1(source) for name, source in loaded.modules.items()}
    return loaded


def _error_line(error: dict[str, Any]) -> str:
    location = error.get("location")
    where = f"{location['file']}:{location['row']}: " if location else ""
    return f"{where}{error['code']}: {error['message']}"


def main(paths: list[str], options: Options, *, out: TextIO, err: TextIO) -> int:
    if not 0 <= options.threshold <= 100:
        err.write("--threshold must be between 0 and 100\n")
        return 1
    coverage = options.coverage or options.threshold > 0
    try:
        loaded = load(paths, options)
        explain = None if not options.verbose else options.explain
        results, cover = run(
            loaded.modules,
            loaded.data,
            coverage=coverage,
            pattern=options.run,
            timeout_ns=options.timeout_ns,
            explain=explain,
            var_values=options.var_values,
        )
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
