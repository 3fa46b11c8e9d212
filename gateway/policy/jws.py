"""Compact JWS (RFC 7515) sign and verify for bundle signatures: RS256/384/512 and ES256/384/512."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509 import load_pem_x509_certificate

from gateway.errors import BundleError

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_SIZE = {"ES256": 32, "ES384": 48, "ES512": 66}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError("signing key is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise BundleError("signing key must be RSA or EC")
    return key


def load_public_key(pem: bytes) -> PublicKey:
    try:
        if b"CERTIFICATE" in pem:
            key: Any = load_pem_x509_certificate(pem).public_key()
        elif b"PRIVATE KEY" in pem:
            key = load_private_key(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise BundleError("verification key is not a PEM public key or certificate") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise BundleError("verification key must be RSA or EC")
    return key


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    return _EC_ALG.get(key.curve.name, "ES256")


def sign(payload: dict[str, Any], key: PrivateKey, *, kid: str) -> str:
    alg = algorithm_for(key)
    header = {"alg": alg, "kid": kid}
    signing_input = f"{b64url(_compact(header))}.{b64url(_compact(payload))}".encode("ascii")
    digest = _HASHES[alg[2:]]()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), digest)
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        size = _EC_SIZE[alg]
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def verify(token: str, key: PublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (header, payload) of a valid token; raise BundleError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise BundleError("signature is not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise BundleError("signature is not valid base64url JSON") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise BundleError("signature header or payload is not an object")
    alg = header.get("alg")
    if alg != algorithm_for(key):
        raise BundleError(f"signature algorithm {alg!r} does not match the verification key")
    digest = _HASHES[alg[2:]]()
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, padding.PKCS1v15(), digest)
        else:
            size = _EC_SIZE[alg]
            if len(signature) != 2 * size:
                raise InvalidSignature
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))
    except InvalidSignature as exc:
        raise BundleError("bundle signature does not verify with the configured key") from exc
    return header, payload


def _compact(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")
