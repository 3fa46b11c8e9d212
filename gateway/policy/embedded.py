"""The embedded engine: the real OPA evaluator in-process, fed by bundles.

Activation is atomic: a new bundle is read, verified and compiled into a new
engine off to the side, then one attribute assignment makes it active. A
decision in flight keeps the engine it started with. Anything that fails
(download, signature, compile) leaves the last good bundle active and is
reported in `status()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

from gateway import tasks
from gateway.errors import BundleError
from gateway.policy import bundle as bundles
from gateway.policy import masking
from gateway.policy.compiler import compile_engine
from gateway.policy.decision_cache import DecisionCache
from gateway.policy.engine import (
    Decision,
    Masker,
    PolicyQueryError,
    fail_closed,
    new_decision_id,
    parse_decision,
    stamped,
)

log = logging.getLogger("gateway.policy")
_QUERY = "gateway.decision"
_KNOWN_KEYS = "gateway.authn.known_api_key_hashes"
_MRN_PATTERNS = "gateway.config.content.mrn_patterns"


@dataclass(frozen=True)
class _Active:
    engine: OpaEngine
    bundle: bundles.Bundle
    digest: str
    known_keys: frozenset[str] | None  # data.gateway.authn.known_api_key_hashes, None when the policy has none
    mrn_patterns: tuple[str, ...] = ()  # data.gateway.config.content.mrn_patterns
    cache: DecisionCache | None = None  # exact answers by the input fields the policy reads
    # cached answers already parsed, by their stored text: a hit is not parsed again (bounded: cleared when full)
    parsed: dict[str, Decision] = field(default_factory=dict)


class EmbeddedEngine:
    def __init__(
        self,
        source: str,
        *,
        verification_key: bytes | None = None,
        poll_seconds: float = 30.0,
        on_activate: Callable[[str], None] | None = None,
        cache_entries: int = 10_000,
    ) -> None:
        self._source = source
        self._key = verification_key
        self._poll_seconds = poll_seconds
        self._on_activate = on_activate
        self._cache_entries = cache_entries
        self._active: _Active | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opa")
        self._log_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opa-log")
        self._etag: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.last_error: str | None = None
        self.last_attempt: float = 0.0

    # -- PolicyEngine ----------------------------------------------------

    @property
    def revision(self) -> str:
        return self._active.bundle.revision if self._active else ""

    @property
    def ready(self) -> bool:
        return self._active is not None

    async def query(self, path: str, policy_input: dict[str, Any]) -> Any:
        active = self._active
        if active is None:
            raise PolicyQueryError("no policy bundle is active")

        def evaluate() -> Any:
            try:
                return active.engine.eval_document(path, policy_input)
            except OpaError as exc:  # undefined included
                raise PolicyQueryError(type(exc).__name__) from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, evaluate)

    def mrn_patterns(self) -> tuple[str, ...]:
        return self._active.mrn_patterns if self._active else ()

    def known_api_key_hashes(self) -> frozenset[str] | None:
        active = self._active
        return active.known_keys if active else frozenset()

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        # A cache hit is answered here (a lookup, ~25 µs, cheaper than a thread hop). An evaluation runs
        # on a thread: ctypes releases the GIL while Go evaluates, so the event loop keeps serving other
        # requests meanwhile (bench: +10% req/s, p99 30 ms -> 13 ms at c=16).
        decision_id = new_decision_id()
        active = self._active  # one read: the whole decision sees one bundle
        if active is None:
            return fail_closed("unavailable", "no policy bundle is active", decision_id=decision_id, revision="")
        lookup = _lookup(active, policy_input)
        if lookup.hit is not None:
            return _from_cache(active, lookup.hit, decision_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _evaluate, active, policy_input, decision_id, lookup)

    def decide_sync(self, policy_input: dict[str, Any]) -> Decision:
        decision_id = new_decision_id()
        active = self._active
        if active is None:
            return fail_closed("unavailable", "no policy bundle is active", decision_id=decision_id, revision="")
        lookup = _lookup(active, policy_input)
        if lookup.hit is not None:
            return _from_cache(active, lookup.hit, decision_id)
        return _evaluate(active, policy_input, decision_id, lookup)

    async def start(self) -> None:
        await self.refresh()
        if self._poll_seconds > 0:
            self._task = asyncio.create_task(self._poll(), name="bundle-poll")

    async def close(self) -> None:
        await tasks.stop(self._task)
        self._task = None
        if self._session:
            await self._session.close()
            self._session = None
        self._executor.shutdown(wait=False)
        self._log_executor.shutdown(wait=False)
        if self._active is not None and self._active.cache is not None:
            self._active.cache.close()

    # -- loading -----------------------------------------------------------

    def activate(self, blob: bytes) -> bool:
        """Read, verify, compile and swap in a bundle. False when it was already active."""
        digest = hashlib.sha256(blob).hexdigest()
        if self._active and self._active.digest == digest:
            return False
        parsed = bundles.read(blob, verification_key=self._key)
        engine = compile_engine(parsed.modules, parsed.data)
        previous = self._active
        self._active = _Active(
            engine=engine,
            bundle=parsed,
            digest=digest,
            known_keys=_known_keys(engine),
            mrn_patterns=_mrn_patterns(engine),
            cache=self._new_cache(parsed),
        )
        if previous is not None and previous.cache is not None:
            previous.cache.close()
        log.info("policy bundle activated", extra={"policy_revision": parsed.revision})
        if self._on_activate:
            self._on_activate(parsed.revision)
        return True

    def _new_cache(self, parsed: bundles.Bundle) -> DecisionCache | None:
        if self._cache_entries <= 0:
            return None
        cache = DecisionCache(parsed.modules, parsed.data, query=_QUERY, max_entries=self._cache_entries)
        if cache.reads.whole_input:  # a policy reading `input` whole would split the cache on every field
            log.info("decision cache off: the policy reads the whole input", extra={"policy_revision": parsed.revision})
            cache.close()
            return None
        return cache

    def cache_stats(self) -> dict[str, int]:
        cache = self._active.cache if self._active else None
        if cache is None:
            return {}
        return {
            "hits": cache.hits,
            "misses": cache.misses,
            "refused": cache.refused,
            "mismatched": cache.mismatched,  # should stay 0: an answer the input paths did not explain
            "entries": len(cache),
        }

    async def refresh(self) -> bool:
        """Fetch the source once and activate it if it changed; keep the last good bundle on failure."""
        self.last_attempt = time.time()
        try:
            blob = await self._fetch()
            changed = blob is not None and self.activate(blob)
        except BundleError as exc:
            self.last_error = str(exc)
            log.error("policy bundle refused, keeping the active one", extra={"reason": self.last_error})
            return False
        self.last_error = None
        return changed

    async def _fetch(self) -> bytes | None:
        if self._source.startswith(("http://", "https://")):
            return await self._fetch_url()
        try:
            return await asyncio.to_thread(Path(self._source).read_bytes)
        except OSError as exc:
            raise BundleError(f"cannot read bundle file {self._source}: {exc.strerror}") from exc

    async def _fetch_url(self) -> bytes | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            async with self._session.get(self._source, headers=headers) as resp:
                if resp.status == 304:
                    return None
                if resp.status != 200:
                    raise BundleError(f"bundle server answered HTTP {resp.status}")
                blob = await resp.content.read(bundles.MAX_COMPRESSED + 1)
                etag = resp.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BundleError(f"bundle download failed: {type(exc).__name__}") from exc
        self._etag = etag
        return blob

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            await self.refresh()

    @property
    def masker(self) -> Masker | None:
        return self.mask_events

    async def mask_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply the active bundle's data.system.log.drop / mask to decision log events (off the event loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._log_executor, self._mask_sync, events)

    def _mask_sync(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        active = self._active
        kept: list[dict[str, Any]] = []
        for event in events:
            if active is None:
                kept.append(_erase_input(event))
                continue
            try:
                if active.engine.eval_document("system.log.drop", event) is True:
                    continue
            except OpaUndefinedError:
                pass
            except OpaError:
                kept.append(_erase_input(event))  # cannot tell: keep the decision, never its input
                continue
            try:
                masks = active.engine.eval_document("system.log.mask", event)
            except OpaUndefinedError:
                masks = []
            except OpaError:
                kept.append(_erase_input(event))
                continue
            kept.append(masking.apply(event, masks))
        return kept

    def status(self) -> dict[str, Any]:
        return {
            "engine": "embedded",
            "revision": self.revision,
            "source": self._source,
            "signed": bool(self._active and self._active.bundle.signed),
            "last_error": self.last_error,
            "decision_cache": self.cache_stats() or None,
        }


@dataclass(frozen=True)
class _Lookup:
    key: str = ""  # empty: not cacheable (no cache, or an input that is not JSON)
    projection: dict[str, Any] = field(default_factory=dict)
    hit: str | None = None  # the cached answer's JSON text


def _lookup(active: _Active, policy_input: dict[str, Any]) -> _Lookup:
    """The cache's answer for this input, if it has one (and the key to offer a new one under)."""
    cache = active.cache
    if cache is None:
        return _Lookup()
    try:
        projection = cache.reads.project(policy_input)
        key = cache.reads.key(projection)
    except (TypeError, ValueError):  # not JSON (never from the pipeline): decide it uncached
        return _Lookup()
    return _Lookup(key, projection, cache.get_text(key))


PARSED_ANSWERS = 1024


def _from_cache(active: _Active, text: str, decision_id: str) -> Decision:
    """A cached answer as this request's decision: its own id and its own copy of the raw answer; the
    parsing done once per distinct answer (a malformed one is parsed, and fails closed, every time)."""
    raw = json.loads(text)
    template = active.parsed.get(text)
    if template is not None:
        return stamped(template, decision_id=decision_id, raw=raw)
    decision = parse_decision(raw, decision_id=decision_id, revision=active.bundle.revision)
    if decision.error is None:
        if len(active.parsed) >= PARSED_ANSWERS:
            active.parsed.clear()
        active.parsed[text] = decision
    return decision


def _evaluate(active: _Active, policy_input: dict[str, Any], decision_id: str, lookup: _Lookup) -> Decision:
    revision = active.bundle.revision
    try:
        raw = active.engine.eval_document(_QUERY, policy_input)
    except OpaUndefinedError:
        return fail_closed("undefined", "policy decision is undefined", decision_id=decision_id, revision=revision)
    except OpaError as exc:
        log.warning("policy evaluation failed", extra={"error_code": exc.code})
        return fail_closed("eval_error", "policy evaluation failed", decision_id=decision_id, revision=revision)
    if lookup.key and active.cache is not None:
        active.cache.offer(lookup.key, lookup.projection, raw)
    return parse_decision(raw, decision_id=decision_id, revision=revision)


def _known_keys(engine: OpaEngine) -> frozenset[str] | None:
    """The bundle's known API key hashes (input-independent, so read once per bundle); None when undefined."""
    try:
        value = engine.eval_document(_KNOWN_KEYS, {})
    except OpaError:  # undefined included: a policy without the rule gets no pre-check
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return frozenset(value)


def _mrn_patterns(engine: OpaEngine) -> tuple[str, ...]:
    """The bundle's MRN patterns for the content detectors (policy data; () when it has none)."""
    try:
        value = engine.eval_document(_MRN_PATTERNS, {})
    except OpaError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _erase_input(event: dict[str, Any]) -> dict[str, Any]:
    event.pop("input", None)
    event["erased"] = ["/input"]
    return event
