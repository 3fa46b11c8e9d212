"""`gateway policy test` and a real `opa test` agree test by test (only where an `opa` binary is on PATH).

These machines have no `opa` binary (no registry they reach ships one), so
here this module skips; a compliance team's CI with `opa` installed runs it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.policy import testing
from tests.factories import POLICY_TESTS, REGO

OPA = shutil.which("opa")
pytestmark = pytest.mark.skipif(OPA is None, reason="no opa binary on PATH")

BROKEN = """package parity_test

test_passes if true

test_fails if false

test_errors if 1 / 0

todo_test_later if false
"""


def _ours(paths: list[str]) -> dict[str, str]:
    out = io.StringIO()
    testing.main(paths, testing.Options(fmt="json"), out=out, err=io.StringIO())
    return {f"{r['package']}.{r['name']}": _outcome(r) for r in json.loads(out.getvalue())}


def _theirs(paths: list[str]) -> dict[str, str]:
    assert OPA is not None
    done = subprocess.run([OPA, "test", "--format", "json", *paths], capture_output=True, text=True, timeout=120)
    return {f"{r['package']}.{r['name']}": _outcome(r) for r in json.loads(done.stdout)}


def _outcome(result: dict[str, object]) -> str:
    if result.get("skip"):
        return "SKIPPED"
    if result.get("error"):
        return "ERROR"
    return "FAIL" if result.get("fail") else "PASS"


def test_shipped_policy_same_outcomes() -> None:
    paths = [str(REGO), str(POLICY_TESTS)]
    assert _ours(paths) == _theirs(paths)


def test_failing_erroring_and_todo_tests_same_outcomes(tmp_path: Path) -> None:
    (tmp_path / "parity_test.rego").write_text(BROKEN)
    assert _ours([str(tmp_path)]) == _theirs([str(tmp_path)])
