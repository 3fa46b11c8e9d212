"""GET and DELETE /v1/responses/{id}: a stored response, from the provider that holds it, for its team only.

The owner (provider, model, team) was remembered when the response was made (state/owners.py). The
request goes through the same gate as every other (endpoint `responses`, the owner's model and, as
`request.provider`, its provider): 401 before anything, 404 when the id is unknown or another team's
(the same answer, so ids cannot be probed), 403 when the policy no longer routes this team to that
provider (denied, never rerouted: no other provider holds the response). Nothing is metered: no tokens.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway import authn
from gateway.apis import RESPONSES
from gateway.errors import GatewayError, NotFound, Unauthenticated, UpstreamError, UpstreamTimeout
from gateway.forward import AttemptFailed, Upstream
from gateway.pipeline import Context, Pipeline, context_headers
from gateway.policy.gate import PolicyGate, RequestContext, RequestFacts
from gateway.providers.base import UpstreamRequest
from gateway.providers.registry import STORED
from gateway.responses_api import RESPONSE_ID
from gateway.settings import ProviderSettings, Settings


class StoredResponses:
    def __init__(self, settings: Settings, gate: PolicyGate, upstream: Upstream, pipeline: Pipeline) -> None:
        self._settings = settings
        self._gate = gate
        self._upstream = upstream
        self._pipeline = pipeline

    async def __call__(self, request: Request) -> Response:
        ctx = Context(RESPONSES)
        pipeline = self._pipeline
        try:
            principal = RESPONSES.credential(request.headers)
            if authn.precheck(principal, pipeline.known_keys()) == "refuse":
                raise Unauthenticated("no valid API key or token for a known team")
            response_id = str(request.path_params.get("response_id", ""))
            owner = await pipeline.owners.get(response_id) if RESPONSE_ID.match(response_id) else None
            use_case, ctx.classification = context_headers(request)
            facts = RequestFacts(
                "responses", owner.model if owner else None, provider=owner.provider if owner else None
            )
            client_ip = request.client.host if request.client else None
            context = RequestContext(use_case, ctx.classification, client_ip)
            ctx.asked = (principal, facts, context)
            decision = ctx.decision = await self._gate.decide(principal, facts, context)
            self._gate.admit(decision)
            if owner is None or owner.team != decision.team:
                raise NotFound("no response with this id for this team", decision_id=decision.decision_id)
            self._gate.enforce(decision)
            provider = self._settings.provider(owner.provider)
            adapter = STORED.get(provider.kind) if provider is not None else None
            if provider is None or adapter is None:
                raise NotFound("the provider holding this response is no longer configured")
            ctx.provider, ctx.model = owner.provider, owner.model
            body = await self._fetch(
                provider, adapter.stored(provider, response_id, request.method), decision.decision_id
            )
            if request.method == "DELETE":
                await pipeline.owners.forget(response_id)
            else:  # a stored answer is an answer: the same output decision as when it was made
                body = await pipeline.checked_output(_json(body), body, ctx, "responses")
        except GatewayError as exc:
            return pipeline.respond_error(exc, ctx)
        pipeline.record(ctx)
        return Response(body, media_type="application/json", headers=ctx.headers())

    async def _fetch(self, provider: ProviderSettings, upstream_request: UpstreamRequest, decision_id: str) -> bytes:
        try:
            async with asyncio.timeout(provider.timeout_seconds):
                response = await self._upstream.open(provider, upstream_request)
                return await self._upstream.read_all(response, provider.max_answer_bytes)
        except TimeoutError:
            raise UpstreamTimeout("the provider timed out", decision_id=decision_id, retry_after=1) from None
        except AttemptFailed as failure:
            if failure.status == 404:
                raise NotFound("the provider no longer holds this response", decision_id=decision_id) from None
            raise UpstreamError("the provider failed to answer", decision_id=decision_id, retry_after=1) from None


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise UpstreamError("the provider's stored response is not JSON", retry_after=1) from None
    if not isinstance(value, dict):
        raise UpstreamError("the provider's stored response is not a JSON object", retry_after=1)
    return value
