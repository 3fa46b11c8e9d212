from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from gateway.errors import BundleError
from gateway.policy import bundle
from gateway.policy.embedded import EmbeddedEngine
from tests.factories import REGO, copy_rego, policy_input, rsa_keypair


def _engine_for(blob: bytes, **kwargs) -> EmbeddedEngine:  # type: ignore[no-untyped-def]
    engine = EmbeddedEngine("unused", poll_seconds=0, **kwargs)
    engine.activate(blob)
    return engine


def _with_cap(tmp_path: Path, cap: int) -> bytes:
    rego = copy_rego(tmp_path / str(cap))
    data = rego / "gateway" / "config" / "data.json"
    data.write_text(data.read_text().replace('"max_tokens": 4096', f'"max_tokens": {cap}', 1))
    return bundle.build(rego)


def test_decision_carries_id_and_active_revision() -> None:
    engine = _engine_for(bundle.build(REGO, revision="rev-a"))
    d = engine.decide_sync(policy_input(use_case="discharge-summary"))
    assert d.allow and d.team == "cardiology"
    assert d.policy_revision == "rev-a" == engine.revision
    assert len(d.decision_id) == 36
    assert d.decision_id != engine.decide_sync(policy_input()).decision_id


def test_no_bundle_fails_closed() -> None:
    engine = EmbeddedEngine("missing.tar.gz", poll_seconds=0)
    d = engine.decide_sync(policy_input())
    assert not d.allow and d.error == "unavailable"
    assert not engine.ready


def test_undefined_decision_fails_closed() -> None:
    blob = bundle._pack(
        {".manifest": b'{"revision": "u", "roots": ["gateway"]}', "gateway/x.rego": b"package gateway\n\nother := 1\n"}
    )
    d = _engine_for(blob).decide_sync(policy_input())
    assert not d.allow and d.error == "undefined"


def test_evaluation_error_fails_closed() -> None:
    source = b"package gateway\n\ndecision := x if { x := 1 / input.request.max_tokens }\n"
    blob = bundle._pack({".manifest": b'{"revision": "e", "roots": ["gateway"]}', "gateway/x.rego": source})
    d = _engine_for(blob).decide_sync(policy_input(max_tokens=0))
    assert not d.allow and d.error == "eval_error"


def test_compile_error_keeps_previous_bundle(tmp_path: Path) -> None:
    engine = _engine_for(bundle.build(REGO, revision="good"))
    broken = bundle._pack(
        {
            ".manifest": b'{"revision": "bad", "roots": ["gateway"]}',
            "gateway/x.rego": b"package gateway\n\ndecision if { y }\n",
        }
    )
    with pytest.raises(BundleError, match=r"x\.rego:3: rego_unsafe_var_error"):
        engine.activate(broken)
    assert engine.revision == "good"
    assert engine.decide_sync(policy_input()).allow


def test_hot_reload_from_file_changes_decisions_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "gateway.tar.gz"
    path.write_bytes(_with_cap(tmp_path, 4096))
    engine = EmbeddedEngine(str(path), poll_seconds=0)

    async def scenario() -> None:
        await engine.start()
        assert engine.decide_sync(policy_input(max_tokens=3000)).allow
        path.write_bytes(_with_cap(tmp_path, 2000))
        assert await engine.refresh()
        denied = engine.decide_sync(policy_input(max_tokens=3000))
        assert not denied.allow and denied.reasons[0].code == "max_tokens_over_cap"
        path.write_bytes(b"corrupted upload")
        assert not await engine.refresh()
        assert engine.last_error == "bundle is not a gzip file"
        assert not engine.decide_sync(policy_input(max_tokens=3000)).allow  # still the 2000 cap
        assert engine.decide_sync(policy_input(max_tokens=1000)).allow
        await engine.close()

    asyncio.run(scenario())


def test_signed_bundles_required_when_key_configured() -> None:
    private, public = rsa_keypair()
    engine = _engine_for(bundle.build(REGO, signing_key=private, revision="signed"), verification_key=public)
    assert engine.revision == "signed"
    with pytest.raises(BundleError, match="not signed"):
        engine.activate(bundle.build(REGO, revision="unsigned"))
    assert engine.revision == "signed"


def test_activation_is_atomic_under_concurrent_decisions(tmp_path: Path) -> None:
    """Decisions running while bundles swap see one bundle whole: revision and decision always agree."""
    blob_a = bundle.build(copy_rego(tmp_path / "a"), revision="cap-4096")
    blob_b = _with_cap(tmp_path, 2000)
    rev_b = bundle.read(blob_b).revision
    engine = _engine_for(blob_a)
    stop = threading.Event()
    mismatches: list[str] = []

    def decide() -> None:
        while not stop.is_set():
            d = engine.decide_sync(policy_input(max_tokens=3000))
            expected_allow = d.policy_revision == "cap-4096"
            if d.allow != expected_allow or d.policy_revision not in ("cap-4096", rev_b):
                mismatches.append(d.policy_revision)

    workers = [threading.Thread(target=decide) for _ in range(2)]
    for w in workers:
        w.start()
    for i in range(20):
        engine.activate(blob_b if i % 2 == 0 else blob_a)
    stop.set()
    for w in workers:
        w.join(timeout=10)
    assert mismatches == []
