"""Rego v0 modules made v1, as `opa test --v0-compatible` reads them (and `opa fmt --v0-v1` rewrites them).

The embedded engine parses only Rego v1, so a v0 module is rewritten first, keeping every row where it was
(errors and test locations still point at the user's lines):

- a rule body gets `if`: `allow { ... }` -> `allow if { ... }`, also after `else` and function heads;
- a partial set rule gets `contains`: `deny[msg] { ... }` -> `deny contains msg if { ... }`.

Everything else is left as it is. A module importing `rego.v1` is v1 already and is not touched. Out of
reach: v0 built-ins that v1 removed (`any`, `all`, `re_match`, `set_diff`, `cast_*`, `net.cidr_overlap`)
and v0 keywords used as variable names: such a module fails to compile, with OPA's message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<newline>\n)
      | (?P<space>[ \t\r]+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)
      | (?P<op>:=|==|!=|<=|>=|[{}\[\]().,;:=<>|&+\-*/%!])
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_V1_IMPORT = re.compile(r"^[ \t]*import[ \t]+rego\.v1\b", re.MULTILINE)
_ENDS_EXPRESSION = ("ident", "string", "raw", "number")
_STATEMENTS = ("package", "import")


@dataclass
class _Token:
    kind: str
    text: str
    start: int
    depth: int  # bracket depth before this token
    line_start: bool  # first token on its line


def tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    depth, line_start = 0, True
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "other"
        text = match.group(0)
        if kind in ("space", "comment"):
            continue
        if kind == "newline":
            line_start = True
            continue
        out.append(_Token(kind, text, match.start(), depth, line_start))
        line_start = False
        if text in ("{", "[", "("):
            depth += 1
        elif text in ("}", "]", ")"):
            depth = max(depth - 1, 0)
    return out


def to_v1(source: str) -> str:
    """The module in v1 syntax; unchanged when it imports rego.v1."""
    if _V1_IMPORT.search(source):
        return source
    found = tokens(source)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), in source order
    for index, token in enumerate(found):
        if token.depth != 0:
            continue
        if token.text == "{" and _opens_body(found, index):
            edits.append((token.start, token.start, "if "))
        elif token.kind == "ident" and token.line_start and token.text not in (*_STATEMENTS, "else", "default"):
            edit = _partial_set(source, found, index)
            if edit is not None:
                edits.append(edit)
    edits.sort()
    out, last = [], 0
    for start, end, replacement in edits:
        out.append(source[last:start])
        out.append(replacement)
        last = end
    out.append(source[last:])
    return "".join(out)


def _opens_body(tokens: list[_Token], index: int) -> bool:
    """A `{` at the top level opens a body unless it is a head's value (after `=`, `:=`, `contains`)."""
    if index == 0:
        return False
    before = tokens[index - 1]
    if before.text in ("if", "contains", "package", "import"):
        return False
    return before.kind in _ENDS_EXPRESSION or before.text in ("]", ")", "}")


def _partial_set(source: str, tokens: list[_Token], index: int) -> tuple[int, int, str] | None:
    """`name[key]` (or `a.b[key]`) as a whole rule head, with no value: a v0 partial set rule."""
    i = index + 1
    while i + 1 < len(tokens) and tokens[i].text == "." and tokens[i + 1].kind == "ident":
        i += 2
    if i >= len(tokens) or tokens[i].text != "[":
        return None
    close = _matching(tokens, i)
    if close is None:
        return None
    after = tokens[close + 1] if close + 1 < len(tokens) else None
    ends_rule = after is None or after.text in ("{", "if") or (after.depth == 0 and after.line_start)
    if not ends_rule:
        return None
    if close == i + 1:
        return None  # `p[]`: not a rule head
    key = source[tokens[i].start + 1 : tokens[close].start]
    return tokens[i].start, tokens[close].start + 1, " contains " + key  # `deny[msg]` -> `deny contains msg`


def _matching(tokens: list[_Token], open_index: int) -> int | None:
    depth = tokens[open_index].depth
    for j in range(open_index + 1, len(tokens)):
        if tokens[j].text in ("]", ")", "}") and tokens[j].depth == depth + 1:
            return j if tokens[j].text == "]" else None
    return None
