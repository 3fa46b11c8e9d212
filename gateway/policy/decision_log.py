"""Decision logs in OPA's event format, one per decision, to a configurable sink.

Event: labels, decision_id, bundles.{gateway}.revision, path, input, result
(or error), requested_by, timestamp, metrics.timer_rego_query_eval_ns, and
erased/masked when the bundle's `data.system.log.mask` changed anything.
`data.system.log.drop` true drops the event. Masking runs off the request
path, in the flusher, with the bundle's own policy; when the mask cannot be
evaluated the whole input is erased rather than written unmasked.

Sinks: console (JSON lines on stdout), file (JSON lines appended), http
(OPA's decision log service API: POST of a gzipped JSON array). Events wait
in a bounded buffer; a slow or dead sink is retried with exponential backoff,
and once the buffer is full new events are dropped and counted
(gateway_decision_logs_total{outcome="dropped"}). Requests never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import Counter

from gateway import __version__, tasks
from gateway.observe import logs
from gateway.observe.metrics import Metrics
from gateway.policy.engine import Decision, Masker
from gateway.settings import DecisionLogSettings

log = logging.getLogger("gateway.decision_log")
EVENT_LOGGER = "gateway.decisions"


class DecisionLogger:
    def __init__(self, settings: DecisionLogSettings, metrics: Metrics, *, masker: Masker | None = None) -> None:
        self._settings = settings
        self._masker = masker
        self._buffer: deque[dict[str, Any]] = deque()
        self._labels = {"app": "policy-gateway", "id": uuid.uuid4().hex, "version": __version__}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._events: Counter = metrics.decision_logs
        self.enabled = settings.sink != "none"

    def record(self, policy_input: dict[str, Any], decision: Decision, *, path: str, eval_ns: int) -> None:
        """Queue one event; never blocks, never raises."""
        if not self.enabled:
            return
        if len(self._buffer) >= self._settings.max_buffer:
            self._events.labels(outcome="dropped").inc()
            return
        event: dict[str, Any] = {
            "labels": self._labels,
            "decision_id": decision.decision_id,
            "bundles": {"gateway": {"revision": decision.policy_revision}},
            "path": path,
            "input": policy_input,
            "requested_by": f"gateway/{self._labels['id']}",
            "timestamp": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "metrics": {"timer_rego_query_eval_ns": eval_ns},
        }
        if decision.error:
            event["error"] = {
                "code": decision.error,
                "message": decision.reasons[0].message if decision.reasons else "",
            }
        else:
            event["result"] = decision.raw
        self._buffer.append(event)
        if len(self._buffer) >= self._settings.batch_size:
            self._wake.set()

    async def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="decision-log")

    async def close(self) -> None:
        if self._task is not None:
            await tasks.stop(self._task)
            self._task = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain_once(), timeout=2.0)  # best effort at shutdown
        if self._session is not None:
            await self._session.close()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.flush_seconds)
            self._wake.clear()
            while self._buffer:
                if await self._drain_once():
                    backoff = 0.5
                    continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.max_backoff_seconds)

    async def _drain_once(self) -> bool:
        """Write one batch; True when written (or nothing to write), False to retry later."""
        count = min(len(self._buffer), self._settings.batch_size)
        if count == 0:
            return True
        batch = [self._buffer[i] for i in range(count)]
        ready = await self._mask(batch)
        try:
            await self._write(ready)
        except (OSError, aiohttp.ClientError, TimeoutError, SinkRefused) as exc:
            log.warning("decision log sink failed, will retry", extra={"error_type": type(exc).__name__})
            self._events.labels(outcome="retried").inc(len(ready))
            return False
        for _ in range(count):
            self._buffer.popleft()
        self._events.labels(outcome="written").inc(len(ready))
        self._events.labels(outcome="dropped_by_policy").inc(count - len(ready))
        return True

    async def _mask(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        copies = [json.loads(json.dumps(event)) for event in batch]  # never mutate what a retry will reuse
        if self._masker is None:
            return copies
        return await self._masker(copies)

    async def _write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        sink = self._settings.sink
        if sink == "console":
            logger = logging.getLogger(EVENT_LOGGER)
            for event in events:
                logs.LINES.write(logger, event)
        elif sink == "file":
            lines = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
            await asyncio.to_thread(_append, Path(self._settings.path), lines)
        elif sink == "http":
            await self._post(events)

    async def _post(self, events: list[dict[str, Any]]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds))
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        token = os.environ.get(self._settings.token_env) if self._settings.token_env else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = gzip.compress(json.dumps(events, separators=(",", ":")).encode())
        assert self._settings.url is not None
        async with self._session.post(self._settings.url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status >= 300:
                raise SinkRefused(resp.status)


class SinkRefused(Exception):
    """The decision log service answered with a non-2xx status."""


def _append(path: Path, lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(lines)
