"""A failing test's evaluation trace, printed as `opa test -v` prints it (topdown's pretty trace).

The engine reports every event (op, query and parent ids, location, node, local values). As `opa test`
does, `--explain fails` (and plain `-v`) keeps the Fail and Note events with the Enter events of the
queries they happened in (their lineage), `--explain notes` only Notes, `--explain full` everything. Depth
comes from the query tree: `| ` per level. Rows show `file:row`, the op and the node; rules by their path
(`data.pkg.rule`), the test's own query as `data.pkg.test_x = _` at `query:1`, as OPA shows them.
`--var-values` adds the expression's local values (`{x: 2}`).

Known difference: expressions are shown as the compiler rewrote them (`gt(__local0__, 5)` where OPA
prints `gt(x, 5)`), because the engine's events carry the values of locals but not the names of the
generated ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

_COLUMN_PADDING = 4
_MAX_VAR_WIDTH = 32
_RULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_LOCATED = re.compile(r"^.+:\d+$")
_RULE = re.compile(r"^(?:default )?[A-Za-z_][\w.]*(?:\[[^\]]*\])?(?:\(.*?\))?[^{]*?(?: if \{|$)")
_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([\w.]+)", re.MULTILINE)
_OPS = {"fails": {"Fail"}, "notes": {"Note"}, "default": {"Fail", "Note"}}


def lineage(events: list[dict[str, Any]], explain: str) -> list[dict[str, Any]]:
    """The events `--explain` keeps: the chosen ops, each preceded by the not yet shown Enter events of its
    query and that query's ancestors."""
    if explain in ("full", "debug"):  # of the runner's lookup query, what OPA's `data.pkg.test_x = _` would show
        return [e for e in events if e["query_id"] != 0 or _own(e)]
    ops = _OPS.get(explain, _OPS["default"])
    enters: dict[int, dict[str, Any]] = {}
    kept: list[dict[str, Any]] = []
    for event in events:
        if event["op"] in ops:
            path = [event]
            qid = event["query_id"]
            while qid in enters:
                enter = enters.pop(qid)
                path.append(enter)
                qid = enter["parent_id"] if enter["parent_id"] != qid else -1
            kept.extend(reversed(path))
        if event["op"] == "Enter":
            enters[event["query_id"]] = event
    return kept


def _own(event: dict[str, Any]) -> bool:
    return event["op"] in ("Enter", "Exit", "Fail") or str(event.get("location") or "").startswith("x := ")


def pretty(events: list[dict[str, Any]], *, test: str, packages: dict[str, str], var_values: bool = False) -> list[str]:
    """Rows as topdown.PrettyTraceWithOpts writes them with locations (and expression values)."""
    depths: dict[int, int] = {}
    rows: list[list[str]] = []
    for event in events:
        qid, parent = event["query_id"], event["parent_id"]
        if qid not in depths:
            depths[qid] = depths.get(parent, 0) + 1
        depth = depths[qid]
        location, node = _describe(event, test, packages)
        spaces = depth if event["op"] == "Enter" or (event["op"] == "Redo" and _is_rule(event)) else depth + 1
        padding = "| " * (spaces - 1) if spaces > 1 else ""
        if event["op"] == "Note":
            text = f"{padding}Note {json.dumps(event.get('message', ''))}"
        else:
            text = f"{padding}{event['op']} {node}" + (f" {event['message']}" if event.get("message") else "")
        row = [location, text]
        if var_values:
            row.append(_values(event.get("locals") or {}))
        rows.append(row)
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3 if var_values else 2)]
    return [
        "".join(f"{cell:<{widths[i] + _COLUMN_PADDING}} " if i < len(row) - 1 else cell for i, cell in enumerate(row))
        for row in rows
    ]


def _describe(event: dict[str, Any], test: str, packages: dict[str, str]) -> tuple[str, str]:
    location = str(event.get("location") or "")
    node = str(event.get("node") or "")
    if event["query_id"] == 0:  # the runner's own lookup: OPA's test query
        return "query:1", f"{test} = _"
    if not _LOCATED.match(location):
        location = "query:1"
    if event["op"] == "Enter" and _is_rule(event):
        file = location.rsplit(":", 1)[0]
        name = _RULE_NAME.match(node)
        if name and file in packages:
            return location, f"{packages[file]}.{name.group(0)}"
    return location, node


def _is_rule(event: dict[str, Any]) -> bool:
    node = str(event.get("node") or "")
    return not node.startswith("__local") and _RULE.match(node) is not None and " if {" in node


def packages_of(modules: dict[str, str]) -> dict[str, str]:
    """file -> `data.<package>`, for naming rules in traces."""
    found = {}
    for file, source in modules.items():
        match = _PACKAGE.search(source)
        if match:
            found[file] = "data." + match.group(1)
    return found


def _values(locals_: dict[str, Any]) -> str:
    parts = []
    for name in sorted(locals_):
        text = json.dumps(locals_[name], separators=(", ", ": "))
        parts.append(f"{name}: {text if len(text) <= _MAX_VAR_WIDTH else text[:_MAX_VAR_WIDTH] + '...'}")
    return "{" + ", ".join(parts) + "}"
