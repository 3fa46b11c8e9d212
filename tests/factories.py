"""Shared test factories: policy inputs, keys, bundles."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parent.parent
REGO = ROOT / "rego"
POLICY_TESTS = ROOT / "policy-tests"
SHIPPED_BUNDLE = ROOT / "bundles" / "gateway.tar.gz"

DEMO_KEYS = {
    "cardiology": "gw-demo-cardiology",
    "eu-research": "gw-demo-eu-research",
    "marketing": "gw-demo-marketing",
}


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def policy_input(
    key: str | None = "gw-demo-cardiology",
    *,
    model: str = "gpt-4o",
    use_case: str | None = None,
    classification: str | None = None,
    max_tokens: int | None = 256,
    jwt: str | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    return {
        "principal": {"api_key_sha256": sha256_hex(key) if key else None, "jwt": jwt},
        "request": {
            "endpoint": "chat.completions",
            "model": model,
            "stream": stream,
            "max_tokens": max_tokens,
            "prompt_tokens": 40,
        },
        "context": {"use_case": use_case, "data_classification": classification, "client_ip": "127.0.0.1"},
    }


def rsa_keypair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def ec_keypair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def copy_rego(dest: Path) -> Path:
    """A private copy of the shipped policy folder, to edit in a test."""
    target = dest / "rego"
    shutil.copytree(REGO, target)
    return target


def raw_tar_gz(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    """A gzipped tar with exactly these entries (names as given), for malformed-bundle tests."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return raw.getvalue()
