from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.policy import discovery, testing
from tests.factories import POLICY_TESTS, REGO, ROOT

SAMPLE = """package sample_test

allowed if input.x == 1

test_passes if allowed with input as {"x": 1}

test_fails if allowed with input as {"x": 2}

twice := 1 if input.on

twice := 2 if input.on

test_errors if twice with input as {"on": true}

todo_test_later if false
"""


def _run(paths: list[str], **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = testing.main(paths, testing.Options(**options), out=out, err=err)
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
    assert lines[0] == f"{tmp_path}/sample_test.rego:"  # the file once, as OPA heads each file's tests
    assert any(line.startswith("data.sample_test.test_fails: FAIL (") for line in lines)
    assert any(line.startswith("data.sample_test.test_errors: ERROR (") for line in lines)
    conflict = "eval_conflict_error: complete rules must not produce multiple outputs"
    assert any(line.startswith(f"  {tmp_path}/sample_test.rego:") and line.endswith(conflict) for line in lines)
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
    assert err == f"1 error occurred: {tmp_path}/bad.rego:3: rego_unsafe_var_error: var y is unsafe\n"  # as OPA says
    assert out == ""


def test_parse_error_shows_opa_header_and_source_line(tmp_path: Path) -> None:
    (tmp_path / "broken.rego").write_text("package broken\n\nz if {\n")
    code, _, err = _run([str(tmp_path)])
    lines = err.splitlines()
    assert code == 1
    assert lines[0] == f"1 error occurred: {tmp_path}/broken.rego:4: rego_parse_error: unexpected eof token"
    assert lines[1:] == ["\tz if {", "\t     ^"]


def test_coverage_threshold_not_met_exits_2(tmp_path: Path) -> None:
    (tmp_path / "cov_test.rego").write_text(
        "package cov_test\n\nf(x) := 1 if x > 0\n\ng(x) := 2 if x < 0\n\ntest_f if f(1) == 1\n"
    )
    code, out, err = _run([str(tmp_path)], coverage=True, threshold=99)
    assert code == 2
    assert "Code coverage threshold not met" in err
    assert json.loads(out)["coverage"] == 100 * 2 / 3, "unrounded, as OPA reports it"


def test_discovery_reports_rows() -> None:
    found = discovery.discover({"a.rego": "package a\n\ntest_one if true\n\ntodo_test_two if true\n"})
    assert [(t.name, t.row, t.package) for t in found] == [("test_one", 3, "data.a"), ("todo_test_two", 5, "data.a")]


# -- issue 16: the suites compliance already has run as `opa test` runs them ------------------------------

DISCOVERY = """package quoted["my-pkg_test"]

import rego.v1

x := `
test_phantom if false
`

  test_indented if true

test_dup if true

test_dup if false

p.test_ref if true

default allowed := false
"""


def test_discovery_comes_from_the_parser(tmp_path: Path) -> None:
    (tmp_path / "d_test.rego").write_text(DISCOVERY)
    code, out, _ = _run([str(tmp_path)], fmt="json")
    results = {r["name"]: r for r in json.loads(out)}
    assert set(results) == {"test_indented", "test_dup", "test_dup#01", "p.test_ref"}, "no phantom from the string"
    assert results["test_dup#01"]["fail"] is True and "fail" not in results["test_dup"], "each definition runs"
    assert results["test_indented"]["package"] == 'data.quoted["my-pkg_test"]'
    assert results["test_indented"]["location"]["row"] == 9
    assert results["test_dup#01"]["location"]["row"] == 13
    assert code == 2


PASS_SEMANTICS = """package sem_test

test_true if true

test_number := 1

test_string := "yes"

test_empty_set contains x if { some x in [] }

test_cases[name] if {
    some name, want in {"one": 1, "two": 2}
    want > 0
}

test_one_case_fails[name] := result if {
    some name, want in {"ok": 1, "bad": 2}
    result := want == 1
}
"""


def test_only_boolean_true_passes(tmp_path: Path) -> None:
    (tmp_path / "sem_test.rego").write_text(PASS_SEMANTICS)
    code, out, _ = _run([str(tmp_path)], fmt="json")
    results = {r["name"]: r for r in json.loads(out)}
    outcomes = {name: "FAIL" if r.get("fail") else "PASS" for name, r in results.items()}
    assert outcomes == {
        "test_true": "PASS",
        "test_number": "FAIL",
        "test_string": "FAIL",
        "test_empty_set": "FAIL",
        "test_cases": "PASS",
        "test_one_case_fails": "FAIL",
    }
    assert results["test_one_case_fails"]["sub_results"] == {"bad": {"name": "bad", "fail": True}, "ok": {"name": "ok"}}
    assert code == 2
    plain = _run([str(tmp_path)], verbose=True)[1].splitlines()
    assert "  bad: FAIL" in plain and "FAILURES" in plain
    assert plain[-2:] == ["PASS: 4/8", "FAIL: 4/8"], "a parameterised test counts once per case, as OPA counts"


def test_skipped_tests_exit_2_unless_z(tmp_path: Path) -> None:
    (tmp_path / "s_test.rego").write_text("package s_test\n\ntest_a if true\n\ntodo_test_b if false\n")
    assert _run([str(tmp_path)])[0] == 2
    assert _run([str(tmp_path)], exit_zero_on_skipped=True)[0] == 0


def test_coverage_flags(tmp_path: Path) -> None:
    (tmp_path / "c_test.rego").write_text("package c_test\n\ntest_a if true\n")
    code, out, _ = _run([str(tmp_path)], threshold=50)
    assert code == 0 and json.loads(out)["coverage"] == 100, "--threshold alone reports coverage"
    assert _run([str(tmp_path)], threshold=150)[0] == 1, "a threshold outside 0-100 is refused"
    (tmp_path / "f_test.rego").write_text("package f_test\n\ntest_b if false\n")
    assert _run([str(tmp_path)], coverage=True)[0] == 1, "coverage with a failing test"


def test_run_ignore_and_fail_on_empty(tmp_path: Path) -> None:
    (tmp_path / "a_test.rego").write_text("package a_test\n\ntest_keep if true\n\ntest_drop if false\n")
    (tmp_path / "skipme").mkdir()
    (tmp_path / "skipme" / "b_test.rego").write_text("package b_test\n\ntest_other if false\n")
    code, out, _ = _run([str(tmp_path)], run="keep$", ignore=["skipme"], verbose=True)
    assert code == 0 and "test_keep: PASS" in out and "test_drop" not in out and "test_other" not in out
    assert _run([str(tmp_path)], run="nothing-matches", fail_on_empty=True)[0] == 1
    assert _run([str(tmp_path)], run="nothing-matches")[0] == 0


def test_every_data_file_loads_at_its_folder_and_merges(tmp_path: Path) -> None:
    (tmp_path / "roles.yaml").write_text("org:\n  name: northwind\n")
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "teams.json").write_text('{"count": 3}')
    (tmp_path / "org" / "more.yml").write_text("regions: [us, eu]\n")
    (tmp_path / "m_test.rego").write_text(
        'package m_test\n\ntest_merged if {\n    data.org.name == "northwind"\n'
        '    data.org.count == 3\n    data.org.regions == ["us", "eu"]\n}\n'
    )
    code, out, _ = _run([str(tmp_path)], verbose=True)
    assert code == 0, out


def test_conflicting_data_files_are_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1}')
    (tmp_path / "b.json").write_text('{"x": 2}')
    (tmp_path / "t_test.rego").write_text("package t_test\n\ntest_a if true\n")
    code, _, err = _run([str(tmp_path)])
    assert code == 1 and "conflicts" in err


def test_print_output_is_kept_per_test(tmp_path: Path) -> None:
    (tmp_path / "p_test.rego").write_text(
        'package p_test\n\ntest_quiet if { print("from quiet"); true }\n\n'
        'test_loud if { print("from loud", 42); false }\n'
    )
    code, out, err = _run([str(tmp_path)])
    assert code == 2 and "from loud 42" in out and "from quiet" not in out and err == ""
    verbose = _run([str(tmp_path)], verbose=True)[1]
    assert "from quiet" in verbose
    results = {r["name"]: r for r in json.loads(_run([str(tmp_path)], fmt="json")[1])}
    assert base64.b64decode(results["test_loud"]["output"]).decode() == "from loud 42\n"


def test_a_thousand_tests_run_in_bounded_time_and_memory(tmp_path: Path) -> None:
    rules = "\n\n".join(f"test_case_{i} if {{\n    x := {i}\n    x == {i}\n}}" for i in range(1000))
    (tmp_path / "big_test.rego").write_text("package big_test\n\n" + rules + "\n")
    script = (
        "import sys, time\n"
        "from gateway.cli import main\n"
        "started = time.perf_counter()\n"
        "code = main(['policy', 'test', sys.argv[1]])\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve, so it would count pytest's own memory
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print('RESULT', code, time.perf_counter() - started, hwm)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert result, done.stdout[-500:] + done.stderr[-500:]
    _, code, seconds, max_rss_kb = result[0].split()
    assert code == "0" and "PASS: 1000/1000" in done.stdout
    assert float(seconds) < 30 and int(max_rss_kb) < 1024 * 1024, f"{seconds} s, {int(max_rss_kb) // 1024} MB"
