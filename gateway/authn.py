"""Read the credential. API keys leave this module only as SHA-256 hex; JWTs go to the policy to verify."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

MAX_CREDENTIAL = 8192


@dataclass(frozen=True, slots=True)
class Principal:
    api_key_sha256: str | None
    jwt: str | None

    def as_input(self) -> dict[str, str | None]:
        return {"api_key_sha256": self.api_key_sha256, "jwt": self.jwt}


ANONYMOUS = Principal(None, None)


def principal(authorization: str | None) -> Principal:
    if not authorization or len(authorization) > MAX_CREDENTIAL:
        return ANONYMOUS
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return ANONYMOUS
    if looks_like_jwt(token):
        return Principal(None, token)
    return Principal(hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).hexdigest(), None)


def looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return False
    return isinstance(header, dict) and "alg" in header


def precheck(principal: Principal, known_keys: frozenset[str] | None) -> Literal["refuse", "known", "unverified"]:
    """What can be said of a credential before any costly work: no credential or a key the policy does not
    list is refused at once (401); a listed key is known; a JWT, or any key when the list is not available
    (OPA server mode), waits for the policy's decision (and its body read takes a bounded slot)."""
    if principal.api_key_sha256 is not None:
        if known_keys is None:
            return "unverified"
        return "known" if principal.api_key_sha256 in known_keys else "refuse"
    return "unverified" if principal.jwt is not None else "refuse"
