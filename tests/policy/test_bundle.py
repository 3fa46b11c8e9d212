from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from gateway.errors import BundleError
from gateway.policy import bundle
from tests.factories import REGO, SHIPPED_BUNDLE, copy_rego, ec_keypair, raw_tar_gz, rsa_keypair

MANIFEST = b'{"revision": "r1", "roots": ["gateway"]}'
MODULE = b"package gateway\n\ndecision := {}\n"


def _members(blob: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        for m in tar:
            handle = tar.extractfile(m)
            out[m.name] = handle.read() if handle else b""
    return out


def _repack(blob: bytes, change: dict[str, bytes]) -> bytes:
    entries = {name: content for name, content in _members(blob).items()}
    entries.update(change)
    return raw_tar_gz(entries)


def test_build_is_reproducible_byte_for_byte() -> None:
    assert bundle.build(REGO) == bundle.build(REGO)


def test_revision_is_a_content_hash_that_changes_with_the_policy(tmp_path: Path) -> None:
    rego = copy_rego(tmp_path)
    before = bundle.read(bundle.build(rego)).revision
    data = rego / "gateway" / "config" / "data.json"
    data.write_text(data.read_text().replace('"max_tokens": 4096', '"max_tokens": 4000', 1))
    after = bundle.read(bundle.build(rego)).revision
    assert before.startswith("sha256-") and after.startswith("sha256-")
    assert before != after


def test_shipped_bundle_matches_rego_folder() -> None:
    assert SHIPPED_BUNDLE.read_bytes() == bundle.build(REGO), "run `make bundle` and commit bundles/gateway.tar.gz"


def test_layout_follows_opa_bundle_format() -> None:
    members = _members(bundle.build(REGO, revision="v7"))
    manifest = json.loads(members["/.manifest"])
    assert manifest == {"revision": "v7", "roots": ["gateway", "system"], "rego_version": 1}
    assert "/gateway/config/data.json" in members
    assert all(name.startswith("/") for name in members)
    assert any(name.endswith("main.rego") for name in members)
    parsed = bundle.read(bundle.build(REGO, revision="v7"))
    assert parsed.data["gateway"]["config"]["teams"]["cardiology"]["phi"] is True


@pytest.mark.parametrize("keypair", [rsa_keypair, ec_keypair], ids=["rsa", "ec"])
def test_signed_bundle_round_trips_and_one_byte_tamper_is_refused(keypair) -> None:  # type: ignore[no-untyped-def]
    private, public = keypair()
    signed = bundle.build(REGO, signing_key=private)
    parsed = bundle.read(signed, verification_key=public)
    assert parsed.signed
    members = _members(signed)
    module_name = next(n for n in members if n.endswith("authz.rego"))
    tampered = members[module_name].replace(b"phi_not_permitted", b"phi_not_permittee", 1)
    assert tampered != members[module_name]
    with pytest.raises(BundleError, match="digest mismatch"):
        bundle.read(_repack(signed, {module_name: tampered}), verification_key=public)


def test_signature_from_another_key_is_refused() -> None:
    private, _ = rsa_keypair()
    _, other_public = rsa_keypair()
    with pytest.raises(BundleError, match="does not verify"):
        bundle.read(bundle.build(REGO, signing_key=private), verification_key=other_public)


def test_unsigned_bundle_refused_when_key_configured() -> None:
    _, public = rsa_keypair()
    with pytest.raises(BundleError, match="not signed"):
        bundle.read(bundle.build(REGO), verification_key=public)


def test_file_added_after_signing_is_refused() -> None:
    private, public = rsa_keypair()
    signed = bundle.build(REGO, signing_key=private)
    extra = b"package gateway.extra\n\nallow_everything := true\n"
    with pytest.raises(BundleError, match="not included in the bundle signature"):
        bundle.read(_repack(signed, {"/gateway/extra.rego": extra}), verification_key=public)


def test_json_hash_ignores_whitespace_and_key_order_but_keeps_number_literals() -> None:
    a = bundle.file_hash("x/data.json", b'{"b": [1, 2.50], "a": "\\u00e9"}')
    b = bundle.file_hash("x/data.json", b'{ "a":"\xc3\xa9",\n "b":[1,2.50] }')
    c = bundle.file_hash("x/data.json", b'{"a": "\xc3\xa9", "b": [1, 2.5]}')
    assert a == b
    assert a != c  # OPA hashes numbers as written (json.Number), so 2.50 and 2.5 differ


def test_rego_hash_is_over_raw_bytes() -> None:
    assert bundle.file_hash("a.rego", b"package a\n") != bundle.file_hash("a.rego", b"package a \n")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"this is not gzip", "not a gzip file"),
        (gzip.compress(b"not a tar archive at all" * 40), "not a tar archive"),
        (raw_tar_gz({".manifest": MANIFEST, "../escape.rego": MODULE}), "not a plain relative path"),
        (raw_tar_gz({".manifest": MANIFEST, "gateway/./x.rego": MODULE}), "not a plain relative path"),
        (
            raw_tar_gz({".manifest": MANIFEST, "gateway/a.rego": MODULE}, symlink="gateway/link.rego"),
            "not a regular file",
        ),
        (
            raw_tar_gz({".manifest": MANIFEST, "other/a.rego": b"package other\n\nx := 1\n"}),
            "outside the manifest roots",
        ),
        (
            raw_tar_gz({".manifest": MANIFEST, "gateway/a.rego": MODULE, "other/data.json": b"{}"}),
            "outside the manifest roots",
        ),
        (raw_tar_gz({".manifest": b"{not json", "gateway/a.rego": MODULE}), ".manifest is not valid JSON"),
        (raw_tar_gz({".manifest": b'{"roots": "gateway"}', "gateway/a.rego": MODULE}), "roots must be a list"),
        (raw_tar_gz({".manifest": b'{"roots": ["a", "a/b"]}', "a/x.rego": b"package a\n"}), "overlap"),
        (raw_tar_gz({".manifest": MANIFEST, "gateway/a.rego": MODULE, "gateway/data.json": b"[1,"}), "not valid JSON"),
        (raw_tar_gz({".manifest": MANIFEST, "gateway/a.rego": b"x := 1\n"}), "no package declaration"),
        (raw_tar_gz({".manifest": MANIFEST}), "no Rego modules"),
    ],
    ids=[
        "not-gzip",
        "not-tar",
        "path-traversal",
        "dot-segment",
        "symlink",
        "module-outside-roots",
        "data-outside-roots",
        "manifest-not-json",
        "roots-not-list",
        "overlapping-roots",
        "data-not-json",
        "no-package",
        "empty",
    ],
)
def test_malformed_bundles_get_one_line_errors(blob: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message) as info:
        bundle.read(blob)
    assert "\n" not in str(info.value)


def test_oversize_bundle_refused_before_unpacking() -> None:
    with pytest.raises(BundleError, match="over the"):
        bundle.read(b"\x1f\x8b" + b"\0" * (bundle.MAX_COMPRESSED + 1))


def test_build_refuses_folder_without_rego(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no \.rego files"):
        bundle.build(tmp_path)


def test_build_accepts_top_level_modules_without_roots(tmp_path: Path) -> None:
    (tmp_path / "authz.rego").write_text("package authz\n\nallow if input.ok\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.rego").write_text("package helpers.strings\n\nx := 1\n")
    parsed = bundle.read(bundle.build(tmp_path))
    manifest = json.loads(parsed.files[bundle.MANIFEST])
    assert "roots" not in manifest, "opa build makes no roots here; the bundle owns all of data"
    assert set(parsed.modules) == {"authz.rego", "lib/helpers.rego"}


def test_build_keeps_an_existing_manifest(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "p.rego").write_text("package team.p\n\nx := 1\n")
    (tmp_path / bundle.MANIFEST).write_text(
        json.dumps({"revision": "from-manifest", "roots": ["team"], "metadata": {"owner": "compliance"}})
    )
    manifest = json.loads(bundle.read(bundle.build(tmp_path)).files[bundle.MANIFEST])
    assert manifest["metadata"] == {"owner": "compliance"} and manifest["roots"] == ["team"]
    assert manifest["revision"] == "from-manifest"
    again = json.loads(bundle.read(bundle.build(tmp_path, revision="r2")).files[bundle.MANIFEST])
    assert again["revision"] == "r2" and again["metadata"] == {"owner": "compliance"}


def test_build_refuses_modules_outside_the_manifest_roots(tmp_path: Path) -> None:
    (tmp_path / "other.rego").write_text("package other\n\nx := 1\n")
    (tmp_path / bundle.MANIFEST).write_text(json.dumps({"roots": ["team"]}))
    with pytest.raises(BundleError, match="outside the manifest roots"):
        bundle.build(tmp_path)
