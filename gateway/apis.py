"""The client APIs the gateway speaks: how each reads its credential and body and shapes its errors.

    endpoint          route                      credential              error shape
    chat.completions  POST /v1/chat/completions  Authorization: Bearer   OpenAI {"error": {type, code, message, param}}
    embeddings        POST /v1/embeddings        Authorization: Bearer   OpenAI
    responses         POST /v1/responses         Authorization: Bearer   OpenAI
    messages          POST /v1/messages          x-api-key, else Bearer  Anthropic {"type": "error", "error": {...}}

Both shapes carry the gateway's `code` and, when a decision was made, its `decision_id`, so scripts can
tell a policy deny from a provider failure whichever SDK they use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway import authn, chat, embeddings, messages, responses_api
from gateway.authn import Principal
from gateway.errors import GatewayError
from gateway.inbound import Inbound

# Anthropic's error types by status (what its SDK maps to its exception classes)
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


@dataclass(frozen=True)
class Api:
    endpoint: str
    parse: Callable[[bytes, Mapping[str, str]], Inbound]
    credential: Callable[[Mapping[str, str]], Principal]
    error_body: Callable[[GatewayError], dict[str, Any]]


def bearer(headers: Mapping[str, str]) -> Principal:
    return authn.principal(headers.get("authorization"))


def api_key_or_bearer(headers: Mapping[str, str]) -> Principal:
    """Anthropic's SDK sends `x-api-key`; tools built for OpenAI-style gateways send a Bearer token."""
    key = headers.get("x-api-key")
    if key is not None:
        return authn.principal("Bearer " + key.strip()) if key.strip() else authn.ANONYMOUS
    return bearer(headers)


def openai_error(exc: GatewayError) -> dict[str, Any]:
    return exc.body()


def anthropic_error(exc: GatewayError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": ANTHROPIC_TYPES.get(exc.status_code, "api_error"),
        "message": exc.message,
        "code": exc.code,
    }
    if exc.decision_id:
        error["decision_id"] = exc.decision_id
    return {"type": "error", "error": error}


def _messages(raw: bytes, headers: Mapping[str, str]) -> Inbound:
    parsed = messages.parse(raw)
    return dataclasses.replace(parsed, beta=messages.beta_flags(headers.get("anthropic-beta")))


CHAT = Api("chat.completions", lambda raw, _: chat.parse(raw), bearer, openai_error)
EMBEDDINGS = Api("embeddings", lambda raw, _: embeddings.parse(raw), bearer, openai_error)
RESPONSES = Api("responses", lambda raw, _: responses_api.parse(raw), bearer, openai_error)
MESSAGES = Api("messages", _messages, api_key_or_bearer, anthropic_error)
COUNT_TOKENS = Api("messages", lambda raw, _: messages.parse(raw, counting=True), api_key_or_bearer, anthropic_error)
