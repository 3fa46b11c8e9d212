from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from gateway.policy import testing
from tests.factories import POLICY_TESTS, REGO

SAMPLE = """package sample_test

allowed if input.x == 1

test_passes if allowed with input as {"x": 1}

test_fails if allowed with input as {"x": 2}

test_errors if 1 / input.zero with input as {"zero": 0}

todo_test_later if false
"""


def _run(
    paths: list[str], *, verbose: bool = False, coverage: bool = False, threshold: float = 0.0, fmt: str = "plain"
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = testing.main(paths, verbose=verbose, coverage=coverage, threshold=threshold, fmt=fmt, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_shipped_policy_passes_with_coverage_over_90() -> None:
    code, out, _ = _run([str(REGO), str(POLICY_TESTS)], coverage=True, threshold=90)
    assert code == 0
    assert json.loads(out)["coverage"] >= 90


def test_plain_output_follows_opa_test(tmp_path: Path) -> None:
    (tmp_path / "sample_test.rego").write_text(SAMPLE)
    code, out, _ = _run([str(tmp_path)])
    assert code == 2
    lines = out.splitlines()
    assert f"{tmp_path}/sample_test.rego:7:" in lines
    assert any(line.startswith("data.sample_test.test_fails: FAIL (") for line in lines)
    assert any(line.startswith("data.sample_test.test_errors: ERROR (") for line in lines)
    assert any("divide by zero" in line for line in lines)
    assert "data.sample_test.todo_test_later: SKIPPED" in lines
    assert "-" * 80 in lines
    assert lines[-4:] == ["PASS: 1/4", "FAIL: 1/4", "SKIPPED: 1/4", "ERROR: 1/4"]
    assert not any("test_passes" in line for line in lines)  # passes are listed only with -v


def test_verbose_lists_passes(tmp_path: Path) -> None:
    (tmp_path / "sample_test.rego").write_text(SAMPLE)
    _, out, _ = _run([str(tmp_path)], verbose=True)
    assert any(line.startswith("data.sample_test.test_passes: PASS (") for line in out.splitlines())


def test_json_format(tmp_path: Path) -> None:
    (tmp_path / "sample_test.rego").write_text(SAMPLE)
    code, out, _ = _run([str(tmp_path)], fmt="json")
    results = {r["name"]: r for r in json.loads(out)}
    assert code == 2
    assert results["test_fails"]["fail"] is True
    assert results["todo_test_later"]["skip"] is True
    assert "error" in results["test_errors"]
    assert "fail" not in results["test_passes"]
    assert results["test_passes"]["package"] == "data.sample_test"


def test_breaking_a_shipped_test_exits_2(tmp_path: Path) -> None:
    tests = tmp_path / "policy-tests"
    shutil.copytree(POLICY_TESTS, tests)
    target = tests / "gateway" / "routing_test.rego"
    target.write_text(target.read_text().replace('["azure-eu-west"]', '["openai-us"]', 1))
    code, out, _ = _run([str(REGO), str(tests)])
    assert code == 2
    assert "test_route_residency_eu_team_only_eu_providers: FAIL" in out


def test_compile_error_exits_1_with_file_and_row(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package bad\n\nx if { y }\n")
    code, out, err = _run([str(tmp_path)])
    assert code == 1
    assert f"{tmp_path}/bad.rego:3: rego_unsafe_var_error: var y is unsafe" in err
    assert out == ""


def test_coverage_threshold_not_met_exits_2(tmp_path: Path) -> None:
    (tmp_path / "cov_test.rego").write_text(
        "package cov_test\n\nf(x) := 1 if x > 0\n\ng(x) := 2 if x < 0\n\ntest_f if f(1) == 1\n"
    )
    code, _, err = _run([str(tmp_path)], coverage=True, threshold=99)
    assert code == 2
    assert "Code coverage threshold not met" in err


def test_discovery_reports_rows() -> None:
    found = testing.discover({"a.rego": "package a\n\ntest_one if true\n\ntodo_test_two if true\n"})
    assert [(t.name, t.row, t.package) for t in found] == [("test_one", 3, "data.a"), ("todo_test_two", 5, "data.a")]
