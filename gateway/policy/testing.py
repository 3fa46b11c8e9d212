"""`opa test` for compliance engineers without an `opa` binary: same discovery, semantics, output and exit codes.

Discovery comes from OPA's own parser (`rego.parse_module`), not from the text: a rule is a test when the
first term of its head's ground prefix that starts with `test_` (or `todo_test_`, SKIPPED) names it, wherever
it is indented, whatever its package is called, and text inside strings is never a test. Several
definitions of one test each run, the second and later as `name#01`, `name#02` ..., as OPA numbers them.

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

from opa_bindings import OpaEngine, OpaError

from gateway.errors import BundleError
from gateway.policy import sources
from gateway.policy.compiler import compile_engine

TEST_PREFIX, SKIP_PREFIX = "test_", "todo_test_"
_PARSE = "x := rego.parse_module(input.file, input.source)"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
class Discovered:
    file: str
    row: int
    package: str  # as OPA prints it: data.a.b, data.quoted["my-pkg_test"]
    name: str  # as OPA prints it: test_a, test_a#01, p.test_c
    keys: list[str]  # the path under data the test is evaluated at
    skip: bool = False
    partial_object: bool = False


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


# -- discovery -------------------------------------------------------------------


def discover(modules: dict[str, str], engine: OpaEngine | None = None) -> list[Discovered]:
    """Every test rule of every module, in file and source order, with the row it starts on."""
    parser = engine or OpaEngine()
    found: list[Discovered] = []
    counts: dict[str, int] = {}
    try:
        for file in sorted(modules):
            source = modules[file]
            try:
                ast = parser.eval_query(_PARSE, {"file": file, "source": source})[0]["x"]
            except (OpaError, IndexError, KeyError) as exc:
                raise BundleError(f"{file}: does not parse") from exc
            package_keys = [str(t["value"]) for t in ast["package"]["path"][1:]]
            package = "data" + "".join(_ref_part(k) for k in package_keys)
            rows = _rule_rows(source)
            rules = ast.get("rules") or []
            for index, rule in enumerate(rules):
                head = rule.get("head") or {}
                named = _test_name(head.get("ref") or [])
                if named is None:
                    continue
                name, ref_keys = named
                printable = ".".join(ref_keys)
                key = package + "." + printable
                seen = counts.get(key, 0)
                counts[key] = seen + 1
                if seen:
                    printable = f"{printable}#{seen:02d}"
                row = rows[index] if len(rows) == len(rules) else _first_row(source, ref_keys[0])
                partial_object = len(head.get("ref") or []) > len(ref_keys) and head.get("value") is not None
                found.append(
                    Discovered(
                        file,
                        row,
                        package,
                        printable,
                        package_keys + ref_keys[:-1] + [_dup_name(ref_keys[-1], seen)],
                        skip=name.startswith(SKIP_PREFIX),
                        partial_object=partial_object,
                    )
                )
    finally:
        if engine is None:
            parser.close()
    return found


def _test_name(ref: list[dict[str, Any]]) -> tuple[str, list[str]] | None:
    """OPA's ruleName: walk the head's ground prefix to the first term naming a test."""
    keys: list[str] = []
    for term in ref:
        if term.get("type") not in ("var", "string") or (keys and term.get("type") == "var"):
            return None  # the ground prefix ended before a test name
        value = str(term.get("value"))
        keys.append(value)
        if value.startswith((TEST_PREFIX, SKIP_PREFIX)):
            return value, keys
    return None


def _dup_name(name: str, seen: int) -> str:
    return name if not seen else f"{name}__gw_dup_{seen:02d}"


def _ref_part(key: str) -> str:
    return f".{key}" if _IDENT.fullmatch(key) else f"[{json.dumps(key)}]"


def _rule_rows(source: str) -> list[int]:
    """Rows where rules start: a line whose first token, outside strings, comments and brackets, is an
    identifier other than package/import/else (`default` counts, as a default rule is a rule)."""
    rows: list[int] = []
    depth, row, i, n = 0, 1, 0, len(source)
    at_line_start = True
    while i < n:
        ch = source[i]
        if ch == "\n":
            row, at_line_start = row + 1, True
            i += 1
            continue
        if at_line_start and ch in " \t\r":
            i += 1
            continue
        if at_line_start and depth == 0:
            word = _IDENT.match(source, i)
            if word and word.group(0) not in ("package", "import", "else"):
                rows.append(row)
        at_line_start = False
        if ch == "#":
            i = source.find("\n", i)
            i = n if i < 0 else i
        elif ch == '"':
            i += 1
            while i < n and source[i] not in '"\n':
                i += 2 if source[i] == "\\" else 1
            i += 1
        elif ch == "`":
            end = source.find("`", i + 1)
            end = n - 1 if end < 0 else end
            row += source.count("\n", i, end)
            i = end + 1
        else:
            depth += 1 if ch in "{[(" else -1 if ch in "}])" else 0
            depth = max(depth, 0)
            i += 1
    return rows


def _first_row(source: str, name: str) -> int:
    match = re.search(rf"^[ \t]*(?:default[ \t]+)?{re.escape(name)}\b", source, re.MULTILINE)
    return source.count("\n", 0, match.start()) + 1 if match else 1


def _renamed(modules: dict[str, str], tests: list[Discovered]) -> dict[str, str]:
    """Sources in which the second and later definitions of a test have names of their own, so each runs."""
    changed = dict(modules)
    for test in tests:
        original = test.keys[-1]
        if "__gw_dup_" not in original:
            continue
        base = original.split("__gw_dup_")[0]
        lines = changed[test.file].split("\n")
        line = lines[test.row - 1]
        lines[test.row - 1] = re.sub(rf"\b{re.escape(base)}\b", original, line, count=1)
        changed[test.file] = "\n".join(lines)
    return changed


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
    engine = compile_engine(_renamed(modules, tests), data)
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
    dirty = False
    last_file = ""
    for result in results:
        shown = verbose or result.outcome not in ("PASS",)
        if shown:
            if last_file and last_file != result.file:
                out.write("\n")
            out.write(f"{result.file}:{result.row}:\n")
            last_file = result.file
            out.write(result.line() + "\n")
            dirty = True
        if result.error:
            out.write(f"  {result.error}\n")
        for case, failed in result.sub_results.items():
            if verbose or failed:
                out.write(f"    {case}: {'FAIL' if failed else 'PASS'}\n")
        if result.output and (verbose or result.outcome in ("FAIL", "ERROR")):
            out.write("\n" + "".join(f"  {line}\n" for line in result.output.splitlines()) + "\n")
    if dirty:
        out.write("-" * 80 + "\n")
    total = len(results)
    for label in ("PASS", "FAIL", "SKIPPED", "ERROR"):
        count = sum(1 for r in results if r.outcome == label)
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
    except (BundleError, re.error) as exc:
        for line in str(exc).split("; "):
            err.write(line + "\n")
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
