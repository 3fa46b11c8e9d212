"""Cases in OPA's own evaluation test-case format, run against the embedded engine (OPA v1.20.2).

Every case passes, or cannot pass here for a stated reason: listed in KNOWN, or (recognised by itself) a
case without `strict_error` that meets a built-in error, which OPA by default makes undefined and the
embedded engine always raises. Modules are named `test-0.rego` ... as OPA's harness names them (its
expected errors quote them). The pass rate and the reasons are printed (pytest -s). GATEWAY_OPA_CASES points
the same harness at OPA's `v1/test/cases/testdata/v1` checkout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from opa_bindings import OpaEngine, OpaError

HERE = Path(__file__).parent / "conformance"
KNOWN: dict[str, str] = {
    # note -> why it cannot pass on the embedded engine (besides STRICT, which is recognised by itself)
}
STRICT = "the embedded engine always raises built-in errors (strict); OPA's default makes them undefined"
_BUILTIN_ERRORS = (": eval_builtin_error: ", ": eval_type_error: ")


@dataclass
class Case:
    file: str
    spec: dict[str, Any]

    @property
    def note(self) -> str:
        return str(self.spec.get("note", ""))


def load(root: Path) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".yaml", ".yml"):
            continue
        for spec in (yaml.safe_load(path.read_text()) or {}).get("cases") or []:
            cases.append(Case(path.name, spec))
    return cases


def outcome(case: Case) -> str | None:
    """None when the case passes; otherwise what differed (never raises)."""
    spec = case.spec
    engine = OpaEngine()
    try:
        try:
            for i, module in enumerate(spec.get("modules") or []):
                engine.add_policy(f"test-{i}.rego", module)  # as OPA's own harness names them
            if spec.get("data"):
                engine.add_data(spec["data"])
            got = engine.eval_query(spec["query"], spec.get("input"))
        except OpaError as exc:
            return _expected_error(spec, exc)
        if "want_error_code" in spec or "want_error" in spec:
            return f"expected error {spec.get('want_error_code')}, got {got!r}"
        if "want_defined" in spec:
            return None if bool(got) == bool(spec["want_defined"]) else f"defined={bool(got)}"
        want = [_normalise(b) for b in spec.get("want_result") or []]
        have = [_normalise({k: v for k, v in b.items() if not k.startswith("__")}) for b in got]
        if spec.get("sort_bindings"):
            want, have = sorted(want, key=repr), sorted(have, key=repr)
        return None if want == have else f"want {want!r}, got {have!r}"
    finally:
        engine.close()


def _expected_error(spec: dict[str, Any], exc: OpaError) -> str | None:
    if "want_error_code" not in spec and "want_error" not in spec:
        return f"unexpected error {exc.code}: {exc.message[:200]}"
    text = f"{exc.code}: {exc.message}"
    code, message = spec.get("want_error_code"), spec.get("want_error")
    if code and code not in text:
        return f"want error code {code}, got {text[:200]}"
    if message and message not in text:
        return f"want error {message!r}, got {text[:200]}"
    return None


def reason(case: Case, problem: str | None) -> str | None:
    """Why a failing case cannot pass here: listed by note, or a non-strict case that met a built-in error
    (OPA, not strict, would make that expression undefined); None for a failure nobody explained."""
    if problem is None:
        return None
    if case.note in KNOWN:
        return KNOWN[case.note]
    strict_case = bool(case.spec.get("strict_error"))
    if not strict_case and problem.startswith("unexpected error") and any(m in problem for m in _BUILTIN_ERRORS):
        return STRICT
    return None


def _normalise(value: Any) -> Any:
    """YAML and the engine's JSON agree on everything but numbers' types (1 vs 1.0)."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


CASES = load(Path(os.environ.get("GATEWAY_OPA_CASES", HERE)))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}:{c.note}" for c in CASES])
def test_case(case: Case) -> None:
    problem = outcome(case)
    if case.note in KNOWN:
        assert problem is not None, f"listed as failing ({KNOWN[case.note]}) but passes: take it off the list"
        return
    assert problem is None or reason(case, problem) is not None, problem


def test_pass_rate_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert CASES, "no conformance cases found"
    problems = [outcome(c) for c in CASES]
    passed = sum(p is None for p in problems)
    reasons: dict[str, int] = {}
    for case, problem in zip(CASES, problems, strict=True):
        why = reason(case, problem)
        if why is not None:
            reasons[why] = reasons.get(why, 0) + 1
    with capsys.disabled():
        print(f"\nconformance: {passed}/{len(CASES)} cases pass ({100 * passed / len(CASES):.1f}%)")
        for why, count in reasons.items():
            print(f"  {count} cannot pass here: {why}")
    assert passed + sum(reasons.values()) == len(CASES), "a failing case nobody explained"
