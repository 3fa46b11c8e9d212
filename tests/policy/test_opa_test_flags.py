"""`gateway policy test` flags and semantics that CI scripts rely on (issue 16, items 4, 5 and 7): built-in
errors, OPA's error objects, --timeout, -b, --v0-compatible, --explain and --var-values."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy import bundle, testing, v0
from tests.factories import POLICY_TESTS, REGO, ROOT


def _run(paths: list[str], **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = testing.main(paths, testing.Options(**options), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _json(paths: list[str], **options: Any) -> dict[str, dict[str, Any]]:
    code, out, _ = _run(paths, fmt="json", **options)
    assert code in (0, 2)
    return {r["name"]: r for r in json.loads(out)}


# -- item 4: a failing built-in -----------------------------------------------------------------------

BUILTINS = """package builtins_test

test_bad_number if to_number("x") == 1

test_guarded if not startswith(input.s, "a") with input as {"s": "b"}

test_ok if to_number("2") == 2
"""


def test_a_failing_builtin_is_a_fail_not_an_error(tmp_path: Path) -> None:
    """opa test makes the expression undefined, so the test fails (it is not an ERROR)."""
    (tmp_path / "builtins_test.rego").write_text(BUILTINS)
    results = _json([str(tmp_path)])
    assert results["test_bad_number"].get("fail") is True
    assert "error" not in results["test_bad_number"]
    assert "fail" not in results["test_guarded"] and "fail" not in results["test_ok"]
    code, out, _ = _run([str(tmp_path)])
    assert code == 2
    assert 'to_number: strconv.ParseFloat: parsing "x": invalid syntax' in out
    assert "opa test makes that expression undefined" in out


# -- item 7: OPA's error objects ------------------------------------------------------------------------

CONFLICT = """package conflict_test

p := 1 if input.on

p := 2 if input.on

test_conflict if p with input as {"on": true}
"""


def test_error_objects_carry_opas_code_message_and_location(tmp_path: Path) -> None:
    (tmp_path / "conflict_test.rego").write_text(CONFLICT)
    error = _json([str(tmp_path)])["test_conflict"]["error"]
    assert error["code"] == "eval_conflict_error"
    assert error["message"] == "complete rules must not produce multiple outputs"
    assert error["location"]["file"] == f"{tmp_path}/conflict_test.rego"
    assert isinstance(error["location"]["row"], int)


# -- item 5: --timeout -------------------------------------------------------------------------------

SLOW = """package slow_test

test_slow if {
    every a in numbers.range(1, 700) {
        every b in numbers.range(1, 700) {
            a + b > 0
        }
    }
}

test_after if true
"""


def test_a_test_past_its_timeout_is_an_error_and_the_suite_goes_on(tmp_path: Path) -> None:
    (tmp_path / "slow_test.rego").write_text(SLOW)
    results = _json([str(tmp_path)], timeout_ns=100_000_000)
    assert results["test_slow"]["error"]["code"] == "eval_cancel_error"
    assert results["test_slow"]["duration"] < 2_000_000_000
    assert "fail" not in results["test_after"] and "error" not in results["test_after"]


def test_timeout_zero_means_none(tmp_path: Path) -> None:
    (tmp_path / "quick_test.rego").write_text("package quick_test\n\ntest_q if count(numbers.range(1, 200000)) > 0\n")
    assert _run([str(tmp_path)], timeout_ns=0)[0] == 0


@pytest.mark.parametrize(
    ("text", "ns"), [("5s", 5 * 10**9), ("250ms", 250 * 10**6), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9), ("0", 0)]
)
def test_go_durations(text: str, ns: int) -> None:
    assert testing.parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["5", "s", "-1s", "5x", "", "1s 2s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        testing.parse_go_duration(text)


def test_cli_refuses_a_bad_timeout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "policy", "test", "--timeout", "5", str(REGO)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"GOGC": "100", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert "--timeout" in done.stderr


# -- item 5: -b ----------------------------------------------------------------------------------------

BUNDLED = """package app.rules

allow if data.app.limits.max > 1

test_limits if allow

test_extra if not data.app.on
"""


def _bundle_folder(root: Path, *, rego_version: int = 1, source: str = BUNDLED) -> Path:
    folder = root / "bundle"
    (folder / "app" / "limits").mkdir(parents=True)
    (folder / ".manifest").write_text(json.dumps({"revision": "r1", "roots": ["app"], "rego_version": rego_version}))
    (folder / "app" / "rules.rego").write_text(source)
    (folder / "app" / "limits" / "data.json").write_text('{"max": 5}')
    (folder / "app" / "extra.json").write_text('{"on": true}')  # not data in a bundle: only data.json/yaml
    return folder


def test_bundle_mode_reads_a_folder_as_opa_reads_a_bundle(tmp_path: Path) -> None:
    folder = _bundle_folder(tmp_path)
    as_bundle = _json([str(folder)], bundle=True)
    assert "fail" not in as_bundle["test_limits"] and "fail" not in as_bundle["test_extra"]
    as_files = _json([str(folder)])  # without -b every .json is data, at its folder: data.app.on
    assert as_files["test_extra"].get("fail") is True


def test_bundle_mode_reads_a_tarball_and_refuses_a_package_outside_its_roots(tmp_path: Path) -> None:
    blob = bundle._pack(
        {
            ".manifest": b'{"revision": "r1", "roots": ["app"]}',
            "app/rules.rego": BUNDLED.encode(),
            "app/limits/data.json": b'{"max": 5}',
        }
    )
    (tmp_path / "b.tar.gz").write_bytes(blob)
    assert _run([str(tmp_path / "b.tar.gz")], bundle=True)[0] == 0
    outside = bundle._pack({".manifest": b'{"roots": ["other"]}', "app/rules.rego": BUNDLED.encode()})
    (tmp_path / "c.tar.gz").write_bytes(outside)
    code, _, err = _run([str(tmp_path / "c.tar.gz")], bundle=True)
    assert code == 1 and "outside the manifest roots" in err


# -- item 5: --v0-compatible -------------------------------------------------------------------------

V0_SUITE = """package lib.k8s

import future.keywords.in

default allow = false

allow {
    input.user == "admin"
}

ops = true {
    some g in input.groups
    g == "ops"
} else = false {
    true
}

deny[msg] {
    not input.ok
    msg := sprintf("bad %v", [input.name])
}

deny["constant"]

violation[{"msg": m}] {
    m := "x"
}

obj[k] = v {
    v := input.o[k]
}

f(x) = y {
    y := x + 1
}

g(x) {
    x > 1
}

cfg = {"a": {"b": 1}} {
    true
}

test_allow {
    allow with input as {"user": "admin"}
}

test_deny {
    deny == {"bad n", "constant"} with input as {"ok": false, "name": "n"}
}

test_functions { f(1) == 2; g(2); not g(0) }

test_violation { violation == {{"msg": "x"}} }

test_cfg { cfg.a.b == 1 }

test_obj { obj == {"a": 1} with input as {"o": {"a": 1}} }

test_else { ops == false with input as {"user": "x", "groups": []} }
"""


def test_v0_suites_run_with_v0_compatible_and_fail_to_load_without(tmp_path: Path) -> None:
    (tmp_path / "lib.rego").write_text(V0_SUITE)
    code, out, err = _run([str(tmp_path)], v0_compatible=True, verbose=True)
    assert code == 0, out + err
    assert "PASS: 7/7" in out
    row = V0_SUITE.splitlines().index("test_allow {") + 1
    assert _json([str(tmp_path)], v0_compatible=True)["test_allow"]["location"]["row"] == row  # the user's row
    code, _, err = _run([str(tmp_path)])
    assert code == 1 and "rego_parse_error" in err


def test_a_v0_bundle_is_read_by_its_manifests_rego_version(tmp_path: Path) -> None:
    source = "package app.rules\n\nallow { data.app.limits.max > 1 }\n\ntest_limits { allow }\n"
    folder = _bundle_folder(tmp_path, rego_version=0, source=source)
    assert _run([str(folder)], bundle=True)[0] == 0


def test_v0_rewrite_keeps_rows_and_names_test_locations(tmp_path: Path) -> None:
    converted = v0.to_v1(V0_SUITE)
    assert converted.count("\n") == V0_SUITE.count("\n")
    for row, (before, after) in enumerate(zip(V0_SUITE.splitlines(), converted.splitlines(), strict=True), 1):
        if before.startswith("test_"):
            assert after.startswith(before.split(" ")[0] + " if"), row


def test_v1_sources_are_left_as_they_are() -> None:
    """Every shipped module and test is v1 already: the rewrite must not touch a byte of any of them."""
    for path in [*REGO.rglob("*.rego"), *POLICY_TESTS.rglob("*.rego")]:
        source = path.read_text()
        assert v0.to_v1(source) == source, path


_HEADS = st.sampled_from(
    [
        ("p {{ {body} }}", "p if {{ {body} }}"),
        ("p = 3 {{ {body} }}", "p = 3 if {{ {body} }}"),
        ("s[x] {{ x := 1; {body} }}", "s contains x if {{ x := 1; {body} }}"),
        ('o[k] = 1 {{ k := "a"; {body} }}', 'o[k] = 1 if {{ k := "a"; {body} }}'),
        ("f(x) = y {{ y := x; {body} }}", "f(x) = y if {{ y := x; {body} }}"),
        ('c = {{"k": [1, {{2}}]}} {{ {body} }}', 'c = {{"k": [1, {{2}}]}} if {{ {body} }}'),
        ('t["lit"]', 't contains "lit"'),
        ("q := {{1, 2}}", "q := {{1, 2}}"),
    ]
)
_BODIES = st.sampled_from(["true", 'input.x == "{ [ ("', "count([1 | true]) == 1", "`raw { [`"])


@settings(max_examples=200, deadline=None)
@given(rules=st.lists(st.tuples(_HEADS, _BODIES), min_size=1, max_size=6))
def test_v0_rewrite_of_generated_modules_matches_the_hand_written_v1(rules: list[tuple[tuple[str, str], str]]) -> None:
    """Whatever rules a module holds (strings and comments with brackets in them included), the rewrite
    gives exactly the v1 text a person would write, rule by rule; no rule is read as another."""
    names = [f"r{i}" for i in range(len(rules))]
    v0_rules, v1_rules = [], []
    for name, ((head0, head1), body) in zip(names, rules, strict=True):
        v0_rules.append(name + head0.format(body=body)[1:] + "  # { [ comment")
        v1_rules.append(name + head1.format(body=body)[1:] + "  # { [ comment")
    source = "package gen\n\n" + "\n\n".join(v0_rules) + "\n"
    assert v0.to_v1(source) == "package gen\n\n" + "\n\n".join(v1_rules) + "\n"


# -- item 7: traces -----------------------------------------------------------------------------------

TRACED = """package traced_test

allow if {
    x := input.n + 1
    trace("checking x")
    x > 5
}

test_allow if allow with input as {"n": 1}

test_passes if true
"""


def test_verbose_failures_come_first_with_opas_trace(tmp_path: Path) -> None:
    (tmp_path / "traced_test.rego").write_text(TRACED)
    code, out, _ = _run([str(tmp_path)], verbose=True, explain="default")
    lines = out.splitlines()
    assert code == 2
    assert lines[:2] == ["FAILURES", "-" * 80]
    assert lines[2].startswith("data.traced_test.test_allow: FAIL (")
    trace_rows = [line for line in lines[3 : lines.index("SUMMARY")] if line.strip()]
    assert trace_rows[0].split() == ["query:1", "Enter", "data.traced_test.test_allow", "=", "_"]
    assert any(r.split()[1:] == ["|", "Enter", "data.traced_test.test_allow"] for r in trace_rows)
    assert any(r.split()[1:] == ["|", "|", "Enter", "data.traced_test.allow"] for r in trace_rows)
    assert any(r.split()[1:] == ["|", "|", "|", "Note", '"checking', 'x"'] for r in trace_rows)
    fails = [r for r in trace_rows if "Fail" in r.split()]
    assert fails[0].split()[0] == f"{tmp_path}/traced_test.rego:6"
    assert fails[-1].split()[:5] == ["query:1", "|", "Fail", "data.traced_test.test_allow", "="]
    assert lines[lines.index("SUMMARY") + 1] == "-" * 80
    assert "data.traced_test.test_passes: PASS" in out  # -v lists passes in the summary part


def test_explain_notes_and_fails_and_var_values(tmp_path: Path) -> None:
    (tmp_path / "traced_test.rego").write_text(TRACED)
    _, notes, _ = _run([str(tmp_path)], verbose=True, explain="notes")
    assert "Note" in notes and " Fail " not in notes.split("SUMMARY")[0]
    _, fails, _ = _run([str(tmp_path)], verbose=True, explain="fails", var_values=True)
    head = fails.split("SUMMARY")[0]
    assert "Note" not in head and " Fail " in head
    assert "{x: 2}" in head
    _, full, _ = _run([str(tmp_path)], verbose=True, explain="full")
    assert full.split("SUMMARY")[0].count("\n") > head.count("\n")
    assert " Eval " in full and " Redo " in full


def test_without_verbose_no_trace_is_collected(tmp_path: Path) -> None:
    (tmp_path / "traced_test.rego").write_text(TRACED)
    _, out, _ = _run([str(tmp_path)])
    assert "FAILURES" not in out and "Enter" not in out


def test_v0_partial_set_with_a_key_over_several_lines(tmp_path: Path) -> None:
    source = """package multi

deny[{
    "msg": m,
    "level": 2
}] {
    m := "x"
}

test_deny {
    deny == {{"msg": "x", "level": 2}}
}
"""
    converted = v0.to_v1(source)
    assert converted.count("\\n") == source.count("\\n")
    assert converted.startswith('package multi\n\ndeny contains {\n    "msg": m,')
    assert '\n} if {\n    m := "x"' in converted
    (tmp_path / "multi.rego").write_text(source)
    assert _run([str(tmp_path)], v0_compatible=True)[0] == 0
