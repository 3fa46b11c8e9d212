"""Cases in OPA's own evaluation test-case format, run against the embedded engine (OPA v1.20.2).

Every case passes, or is listed in KNOWN with the reason it cannot pass here. The pass rate is printed
(pytest -s). GATEWAY_OPA_CASES points the same harness at OPA's `v1/test/cases/testdata/v1` checkout.
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
KNOWN = {
    # note -> why it cannot pass on the embedded engine
    "builtins/to_number error is undefined without strict errors": (
        "the embedded engine always raises built-in errors (strict); OPA's default makes them undefined"
    ),
}


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
                engine.add_policy(f"mod{i}.rego", module)
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
    assert problem is None, problem


def test_pass_rate_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    results = [outcome(c) is None for c in CASES]
    assert CASES, "no conformance cases found"
    rate = 100 * sum(results) / len(results)
    with capsys.disabled():
        print(
            f"\nconformance: {sum(results)}/{len(results)} cases pass ({rate:.1f}%), {len(KNOWN)} listed with reasons"
        )
    assert sum(results) == len(results) - len([c for c in CASES if c.note in KNOWN])
