"""Demo credentials: mint a JWT the shipped policy accepts, with the demo-only signing key.

The key in assets/ exists so `gateway demo` and the tests can show the
JWT path; its public half is in rego/gateway/config/data.json. A real
deployment replaces both with its identity provider's keys.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.policy.jws import b64url

DEMO_ISSUER = "https://idp.northwind-health.example"
DEMO_AUDIENCE = "llm-gateway"


def mint_demo_jwt(team: str, *, ttl_seconds: int = 3600, audience: str = DEMO_AUDIENCE) -> str:
    now = int(time.time())
    claims = {
        "iss": DEMO_ISSUER,
        "aud": audience,
        "sub": f"{team}-app",
        "team": team,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return sign_demo_jwt(claims)


def sign_demo_jwt(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """Any claims (and header), signed ES256 with the demo key: for tests of what the policy refuses."""
    pem = resources.files("gateway.demo").joinpath("assets/demo-jwt-signing-key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    header = header or {"alg": "ES256", "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{signing_input.decode()}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
