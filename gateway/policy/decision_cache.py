"""An exact decision cache: a cached answer is used only when the policy could not answer differently.

What the cache establishes, per bundle (a new bundle gets a new cache):

- **Which input fields the policy can read.** Every reference to `input` in every module of the bundle,
  read from OPA's own parser (`rego.parse_module`), up to its first non-constant part: `input.request.model`
  reads that field, `input.headers[h]` reads all of `input.headers`, a bare `input` (passed to a function,
  aliased by an import) reads everything. The key is the value (or the absence) at each of those paths,
  as canonical JSON. Fields the policy never names (prompt size, client address) do not split the cache.
- **That the answer did not depend on the clock or the world.** Lines calling a built-in whose result is
  not a function of its arguments (`time.now_ns`, `io.jwt.decode_verify` without a time, `http.send`,
  `rand.intn`, ...) are found in the source. A new answer is stored only after a second evaluation of the
  same input, with coverage, shows that none of those lines ran: a JWT request, whose check reads the
  clock, is never cached; an API-key request, which never reaches that line, is.

The verification runs off the request path on its own engine (its own compiled copy of the bundle), one
at a time, and is skipped when one is already queued: a miss costs the request nothing extra. Every
request still gets its own decision id and decision-log event; only the evaluation is shared.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from opa_bindings import OpaEngine, OpaError

from gateway.jsontext import canonical
from gateway.policy.compiler import compile_engine
from gateway.policy.v0 import tokens

# Built-ins whose answer is not a function of their arguments (OPA's "nondeterministic" ones, those that
# read the evaluation's clock, and signing with randomised signatures).
VOLATILE = frozenset(
    {
        "time.now_ns",
        "io.jwt.decode_verify",
        "io.jwt.encode_sign",
        "io.jwt.encode_sign_raw",
        "providers.aws.sign_req",
        "crypto.x509.parse_and_verify_certificates",
        "crypto.x509.parse_and_verify_certificates_with_keys",
        "http.send",
        "net.lookup_ip_addr",
        "opa.runtime",
        "rand.intn",
        "uuid.rfc4122",
    }
)
_PARSE = "x := rego.parse_module(input.file, input.source)"
Path = tuple[str, ...]


@dataclass(frozen=True)
class Reads:
    """The input paths a bundle's modules can read, and the rows that call a volatile built-in."""

    paths: tuple[Path, ...]  # () in it: the whole input
    volatile_rows: dict[str, frozenset[int]]

    @property
    def whole_input(self) -> bool:
        return () in self.paths

    def project(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        """The input cut down to the paths the policy can read (absent ones stay absent)."""
        out: dict[str, Any] = {}
        for path in self.paths:
            node: Any = policy_input
            for step in path:
                if not isinstance(node, dict) or step not in node:
                    break
                node = node[step]
            else:
                target = out
                for step in path[:-1]:
                    target = target.setdefault(step, {})
                target[path[-1]] = node
        return out

    @staticmethod
    def key(projection: dict[str, Any]) -> str:
        return canonical(projection)


def analyze(modules: dict[str, str]) -> Reads:
    parser = OpaEngine()
    try:
        paths: set[Path] = set()
        for file, source in modules.items():
            tree = parser.eval_query(_PARSE, {"file": file, "source": source})[0]["x"]
            _collect(tree.get("imports") or [], paths)
            _collect(tree.get("rules") or [], paths)
    finally:
        parser.close()
    return Reads(_minimal(paths), {file: _volatile_rows(source) for file, source in modules.items()})


def _collect(node: Any, paths: set[Path]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, paths)
        return
    if not isinstance(node, dict):
        return
    kind, value = node.get("type"), node.get("value")
    if kind == "var" and value == "input":
        paths.add(())  # `input` on its own: everything
        return
    if kind == "ref" and isinstance(value, list) and value and value[0] == {"type": "var", "value": "input"}:
        prefix: list[str] = []
        for part in value[1:]:
            if part.get("type") != "string":
                break
            prefix.append(str(part["value"]))
        paths.add(tuple(prefix))
        _collect(value[1 + len(prefix) :], paths)  # variables inside `input[x]` may refer to more input
        return
    for child in node.values():
        _collect(child, paths)


def _minimal(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Drop paths inside another read path: reading `a` covers `a.b`."""
    ordered = sorted(set(paths), key=len)
    kept: list[Path] = []
    for path in ordered:
        if not any(path[: len(k)] == k for k in kept):
            kept.append(path)
    return tuple(sorted(kept))


def _volatile_rows(source: str) -> frozenset[int]:
    rows: set[int] = set()
    found = tokens(source)
    for i, token in enumerate(found):
        if token.kind != "ident":
            continue
        name, j = token.text, i + 1
        while j + 1 < len(found) and found[j].text == "." and found[j + 1].kind == "ident":
            name, j = f"{name}.{found[j + 1].text}", j + 2
        if name in VOLATILE and j < len(found) and found[j].text == "(":
            rows.add(source.count("\n", 0, token.start) + 1)
    return frozenset(rows)


class DecisionCache:
    """Answers by key for one bundle; new answers enter only once verified (see the module docstring)."""

    def __init__(self, modules: dict[str, str], data: dict[str, Any], *, query: str, max_entries: int = 10_000) -> None:
        self.reads = analyze(modules)
        self._modules, self._data, self._query = modules, data, query
        self._entries: OrderedDict[str, str] = OrderedDict()  # key -> the answer as JSON text
        self._volatile: OrderedDict[str, None] = OrderedDict()  # keys whose answers read the clock or world
        self._max = max_entries
        self._lock = threading.Lock()
        self._verifying = threading.Lock()
        self._pending = 0
        self._verifier: OpaEngine | None = None  # used under self._verifying only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opa-cache")
        self.hits = self.misses = self.refused = self.mismatched = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any | None:
        """A fresh copy of the stored answer: each request's decision gets its own (Decision.raw is a plain
        dict), so nothing done to one request's answer reaches the next."""
        text = self.get_text(key)
        return None if text is None else json.loads(text)

    def get_text(self, key: str) -> str | None:
        """The stored answer as JSON text: the same str object for as long as the entry lives (so a caller
        may key its own derived values by it; its hash is computed once)."""
        with self._lock:
            text = self._entries.get(key)
            if text is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return text

    def offer(self, key: str, projection: dict[str, Any], served: Any) -> None:
        """Verify and store this answer in the background, unless a verification is already queued."""
        with self._lock:
            if self._pending or key in self._entries or key in self._volatile:
                return
            self._pending += 1
        snapshot = _canonical(served)  # now: the request's own copy may be edited later (log masks)
        self._executor.submit(self._verify, key, projection, snapshot)

    def verify_now(self, key: str, projection: dict[str, Any], served: Any) -> bool:
        """The verification itself: the projection alone must give the answer served for the whole input,
        with no volatile line run. True when the answer was stored."""
        return self._check(key, projection, _canonical(served))

    def _check(self, key: str, projection: dict[str, Any], served: str) -> bool:
        with self._verifying:  # one at a time: the coverage read must be this evaluation's own
            if self._verifier is None:  # compiled outside the entries' lock: lookups never wait for it
                self._verifier = compile_engine(self._modules, self._data)
            try:
                raw = self._verifier.eval_document(self._query, projection, coverage=True)
            except OpaError:
                return False  # undefined or an error: nothing worth keeping
            ran = _covered_rows(self._verifier.last_coverage or {})
        volatile = any(ran.get(file, set()) & rows for file, rows in self.reads.volatile_rows.items())
        mismatch = _canonical(raw) != served  # the analysis would have missed a read: never trust it
        if volatile or mismatch:
            with self._lock:
                self.refused += 1
                self.mismatched += mismatch
                self._volatile[key] = None  # the same fields take the same path to that line: not again
                while len(self._volatile) > self._max:
                    self._volatile.popitem(last=False)
            return False
        with self._lock:
            self._entries[key] = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return True

    def _verify(self, key: str, projection: dict[str, Any], served: str) -> None:
        try:
            self._check(key, projection, served)
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        """Stop verifying; a verification under way finishes on its own (and closes nothing it needs)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _canonical(value: Any) -> str:
    return canonical(value)


def _covered_rows(report: dict[str, Any]) -> dict[str, set[int]]:
    rows: dict[str, set[int]] = {}
    for file, info in (report.get("files") or {}).items():
        for span in info.get("covered") or []:
            rows.setdefault(file, set()).update(range(span["start"]["row"], span["end"]["row"] + 1))
    return rows
