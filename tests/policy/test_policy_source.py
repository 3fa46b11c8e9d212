"""The shipped Rego keeps one source for each fact: deny codes agree with their METADATA and the data README,
and packages import each other without a cycle (Rego linters flag one)."""

from __future__ import annotations

import re

from tests.factories import REGO

DENY = re.compile(
    r"# custom:\n#\s+code: (?P<meta>[a-z_]+)\n(?:#.*\n)*deny contains \{\s*\"code\": \"(?P<literal>[a-z_]+)\"",
)


def _authz() -> str:
    return (REGO / "gateway" / "authz" / "authz.rego").read_text()


def test_every_deny_code_matches_its_metadata() -> None:
    source = _authz()
    pairs = [(m.group("meta"), m.group("literal")) for m in DENY.finditer(source)]
    assert len(pairs) == source.count("deny contains"), "a deny rule without METADATA custom.code"
    assert all(meta == literal for meta, literal in pairs), pairs


def test_the_data_readme_lists_exactly_the_deny_codes() -> None:
    codes = {m.group("meta") for m in DENY.finditer(_authz())}
    readme = (REGO / "gateway" / "config" / "README.md").read_text()
    table = readme.split("## Deny reasons", 1)[1]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert listed == codes


def test_packages_import_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    rules: dict[str, set[str]] = {}
    for path in REGO.rglob("*.rego"):
        text = path.read_text()
        package = re.search(r"^package ([\w.]+)", text, re.MULTILINE)
        assert package is not None, path
        graph.setdefault(package.group(1), set()).update(re.findall(r"^import data\.([\w.]+)", text, re.MULTILINE))
        rules.setdefault(package.group(1), set()).update(re.findall(r"^(?:default )?(\w+)\b", text, re.MULTILINE))

    def edges(package: str) -> set[str]:
        """The packages an import names: the package itself, or the one defining the imported rule (an import
        of a data path such as data.gateway.config names no package)."""
        found = set()
        for path in graph[package]:
            for p in graph:
                rest = path[len(p) + 1 :].split(".")[0] if path.startswith(p + ".") else None
                if path == p or (rest is not None and rest in rules[p]):
                    found.add(p)
        return found - {package}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in edges(start):
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, target, seen):
                    return True
        return False

    cycles = [p for p in graph if reaches(p, p, set())]
    assert cycles == [], f"import cycles through {cycles}"


def test_no_line_over_120_characters() -> None:
    long = [
        f"{p.name}:{i}"
        for p in REGO.rglob("*.rego")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if len(line.expandtabs(4)) > 120
    ]
    assert long == []
