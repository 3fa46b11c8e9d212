"""Which rules are tests, found as `opa test` finds them: from OPA's own parser, never from the text.

A rule is a test when the first term of its head's ground prefix that starts with `test_` (or
`todo_test_`, SKIPPED) names it, wherever it is indented, whatever its package is called; text inside
strings is never a test. Several definitions of one test each run, the second and later as `name#01`,
`name#02` ..., as OPA numbers them: their sources are renamed for the run (`_renamed`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from opa_bindings import OpaEngine, OpaError

from gateway.errors import BundleError
from gateway.policy.compiler import compile_engine

TEST_PREFIX, SKIP_PREFIX = "test_", "todo_test_"
_PARSE = "x := rego.parse_module(input.file, input.source)"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Discovered:
    file: str
    row: int
    package: str  # as OPA prints it: data.a.b, data.quoted["my-pkg_test"]
    name: str  # as OPA prints it: test_a, test_a#01, p.test_c
    keys: list[str]  # the path under data the test is evaluated at
    skip: bool = False
    partial_object: bool = False


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
                compile_engine({file: source}, {}).close()  # raises OPA's own parse report for this module
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


def renamed(modules: dict[str, str], tests: list[Discovered]) -> dict[str, str]:
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
