"""Decisions from an OPA server (a sidecar) over its REST Data API: POST /v1/data/gateway/decision.

Fail closed, always: a timeout (policy.timeout_ms), a connection error, a 5xx
or an unreadable answer is a deny that the gateway turns into 503
policy_unavailable; an answer without `result` (the decision is undefined) is
a 403 deny. Never an allow. The client is opa-python-client's AsyncOpaClient
with retries off (a retry cannot fit a per-request budget of milliseconds)
and one pooled session, so a decision costs one loopback round trip.
The bundle revision comes from each answer's provenance (`?provenance=true`).
Every query asks for `?strict-builtin-errors=true`: a built-in that fails is
an error (a 500, so a deny), as in the embedded engine, whose strict mode is
fixed. Without it OPA would make the expression undefined, and the two modes
could decide the same input differently (a `deny` rule whose built-in fails
would quietly not deny).
Decision logs, with the bundle's masks, are OPA's own job in this mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from urllib.parse import urlparse

import aiohttp
from opa_client.opa_async import AsyncOpaClient

from gateway import tasks
from gateway.policy.engine import Decision, Masker, PolicyQueryError, fail_closed, new_decision_id, parse_decision

log = logging.getLogger("gateway.policy")
HEALTH_SECONDS = 5.0
_STRICT = {"strict-builtin-errors": True}


class RemoteEngine:
    def __init__(self, url: str, *, timeout_ms: int, token_env: str | None = None) -> None:
        parsed = urlparse(url)
        self._timeout = timeout_ms / 1000
        self._client = AsyncOpaClient(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (443 if parsed.scheme == "https" else 8181),
            ssl=parsed.scheme == "https",
            token=os.environ.get(token_env) if token_env else None,
            retries=0,
            timeout=max(self._timeout, 0.001),
        )
        self._revision = ""
        self._ready = False
        self._health: asyncio.Task[None] | None = None
        self._known: frozenset[str] | None = None  # the server's known API key hashes, None: unknown
        self._mrn_patterns: tuple[str, ...] = ()  # the server's data.gateway.config.content.mrn_patterns
        self._known_revision: str | None = None
        self.last_error: str | None = None

    @property
    def revision(self) -> str:
        return self._revision

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        await self._client.__aenter__()
        await self._check()
        self._health = asyncio.create_task(self._watch(), name="opa-health")

    async def close(self) -> None:
        await tasks.stop(self._health)
        self._health = None
        await self._client.close_connection()

    @property
    def masker(self) -> Masker | None:
        return None  # OPA's decision logger masks with the same bundle's system.log rules

    async def query(self, path: str, policy_input: dict[str, Any]) -> Any:
        package, _, rule = path.rpartition(".")
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._client.query_rule(
                    policy_input, package.replace(".", "/"), rule, query_params=_STRICT
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise PolicyQueryError(type(exc).__name__) from exc
        if not isinstance(answer, dict) or "result" not in answer:
            raise PolicyQueryError("undefined")
        return answer["result"]

    def mrn_patterns(self) -> tuple[str, ...]:
        return self._mrn_patterns

    def known_api_key_hashes(self) -> frozenset[str] | None:
        """The server's `data.gateway.authn.known_api_key_hashes`, read at start, every HEALTH_SECONDS and
        when a decision shows a new revision; None (every key waits for the decision) until read or when the
        policy has no such rule. A key added by a new bundle may meet a 401 for up to HEALTH_SECONDS."""
        return self._known

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        decision_id = new_decision_id()
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._client.query_rule(
                    policy_input, "gateway", "decision", query_params={"provenance": True, **_STRICT}
                )
        except TimeoutError:
            return self._failed("timeout", "the policy server did not answer in time", decision_id)
        except aiohttp.ClientResponseError as exc:
            return self._failed("server_error", f"the policy server answered HTTP {exc.status}", decision_id)
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed("connection", f"cannot reach the policy server ({type(exc).__name__})", decision_id)
        except ValueError:
            return self._failed("server_error", "the policy server's answer is not JSON", decision_id)
        if not isinstance(answer, dict):
            return self._failed("server_error", "the policy server's answer is not a JSON object", decision_id)
        self._ready = True
        self._revision = _revision(answer) or self._revision
        if self._revision != self._known_revision and self._known is not None:
            self._known = None  # a new bundle: wait for the decision until the list is read again
        decision_id = str(answer.get("decision_id") or decision_id)
        if "result" not in answer:  # OPA omits `result` when the document is undefined
            return fail_closed(
                "undefined", "policy decision is undefined", decision_id=decision_id, revision=self._revision
            )
        return parse_decision(answer["result"], decision_id=decision_id, revision=self._revision)

    def _failed(self, error: str, message: str, decision_id: str) -> Decision:
        self.last_error = message
        log.warning("policy server failed, denying", extra={"error_code": error})
        return fail_closed(error, message, decision_id=decision_id, revision=self._revision)

    async def _check(self) -> None:
        """OPA's /health?bundles answers 200 only once its bundles are activated."""
        try:
            async with asyncio.timeout(max(self._timeout, 1.0)):
                health = await self._health_ok()  # not check_health(): it swallows every exception
        except (TimeoutError, aiohttp.ClientError, OSError):
            health = False
        self._ready = health
        if health:
            await self._read_known_keys()

    async def _read_known_keys(self) -> None:
        try:
            async with asyncio.timeout(max(self._timeout, 1.0)):
                answer = await self._client.query_rule(
                    {}, "gateway/authn", "known_api_key_hashes", query_params={"provenance": True}
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return  # keep what we had; the next check tries again
        value = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            self._known, self._known_revision = frozenset(value), _revision(answer) or self._revision
        else:
            self._known = None
        try:
            async with asyncio.timeout(max(self._timeout, 1.0)):
                content = await self._client.query_rule({}, "gateway/config/content", "mrn_patterns")
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return
        patterns = content.get("result") if isinstance(content, dict) else None
        self._mrn_patterns = tuple(p for p in patterns if isinstance(p, str)) if isinstance(patterns, list) else ()

    async def _health_ok(self) -> bool:
        session = self._client._session
        assert session is not None
        async with session.get(f"{self._client.schema}{self._client.host}:{self._client.port}/health?bundles") as resp:
            await resp.read()
            return bool(resp.status == 200)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_SECONDS)
            await self._check()

    def status(self) -> dict[str, Any]:
        return {"engine": "opa", "revision": self._revision, "ready": self._ready, "last_error": self.last_error}


def _revision(answer: dict[str, Any]) -> str:
    bundles = (answer.get("provenance") or {}).get("bundles") or {}
    if not isinstance(bundles, dict):
        return ""
    revisions = [str(b.get("revision", "")) for b in bundles.values() if isinstance(b, dict)]
    return ",".join(r for r in revisions if r)
