"""The command line as users run it: a real subprocess, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.factories import ROOT, policy_input, rsa_keypair


def gateway(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_policy_test_passes_on_shipped_policy() -> None:
    result = gateway("policy", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().startswith("PASS: ")


def test_bundle_build_sign_verify_and_tamper(tmp_path: Path) -> None:
    private, public = rsa_keypair()
    (tmp_path / "key.pem").write_bytes(private)
    (tmp_path / "pub.pem").write_bytes(public)
    out = tmp_path / "b.tar.gz"
    built = gateway(
        "bundle", "build", "--signing-key", str(tmp_path / "key.pem"), "--revision", "2026.11.28-1", "-o", str(out)
    )
    assert built.returncode == 0, built.stderr
    verified = gateway("bundle", "verify", str(out), "--verification-key", str(tmp_path / "pub.pem"))
    assert verified.returncode == 0
    assert "revision=2026.11.28-1" in verified.stdout and "signature verified" in verified.stdout
    blob = bytearray(out.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    out.write_bytes(bytes(blob))
    refused = gateway("bundle", "verify", str(out), "--verification-key", str(tmp_path / "pub.pem"))
    assert refused.returncode == 1
    assert refused.stderr.startswith("gateway: ") and refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr


def test_policy_eval_prints_decision(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(policy_input("gw-demo-eu-research", classification="phi")))
    result = gateway("policy", "eval", "--input", str(path))
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["allow"] is False
    assert decision["reasons"][0]["code"] == "phi_not_permitted"
    assert decision["policy_revision"].startswith("sha256-")


def test_policy_eval_wrong_shape_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"principal": {"api_key_sha256": 5, "jwt": null}}')
    result = gateway("policy", "eval", "--input", str(path))
    assert result.returncode == 1
    assert result.stderr == f"gateway: {path}: policy input principal.api_key_sha256 must be str or null\n"


def test_policy_check_reports_file_row_message(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package bad\n\nx if { y }\n")
    result = gateway("policy", "check", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{tmp_path}/bad.rego:3: rego_unsafe_var_error: var y is unsafe"


def test_missing_file_is_one_line_and_debug_shows_traceback(tmp_path: Path) -> None:
    plain = gateway("bundle", "verify", str(tmp_path / "nope.tar.gz"))
    assert plain.returncode == 1 and plain.stderr.startswith("gateway: cannot read bundle")
    debug = gateway("--debug", "bundle", "verify", str(tmp_path / "nope.tar.gz"))
    assert "Traceback" in debug.stderr


def test_policy_check_reads_v0_and_bundles_on_request(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.rego").write_text("package lib\n\nallow { input.x == 1 }\n")
    refused = gateway("policy", "check", str(tmp_path / "lib"))
    assert refused.returncode == 1 and "a.rego:3: rego_parse_error" in refused.stderr
    assert gateway("policy", "check", "--v0-compatible", str(tmp_path / "lib")).returncode == 0
    (tmp_path / "lib" / ".manifest").write_text('{"roots": ["other"], "rego_version": 0}')
    outside = gateway("policy", "check", "-b", str(tmp_path / "lib"))
    assert outside.returncode == 1 and "outside the manifest roots" in outside.stderr
    (tmp_path / "lib" / ".manifest").write_text('{"roots": ["lib"], "rego_version": 0}')
    assert gateway("policy", "check", "-b", str(tmp_path / "lib")).returncode == 0  # v0 by its manifest
