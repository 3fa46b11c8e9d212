"""Decision logs: OPA's event format, the bundle's masks, and sinks that are slow, down or refusing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.demo.auth import mint_demo_jwt
from gateway.demo.standins import serve_local
from gateway.observe.metrics import Metrics
from gateway.policy import bundle
from gateway.policy.decision_log import DecisionLogger
from gateway.policy.embedded import EmbeddedEngine
from gateway.settings import DecisionLogSettings
from tests.factories import REGO, SHIPPED_BUNDLE, policy_input


def _engine(blob: bytes | None = None) -> EmbeddedEngine:
    engine = EmbeddedEngine("unused", poll_seconds=0)
    engine.activate(blob or SHIPPED_BUNDLE.read_bytes())
    return engine


def _count(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("gateway_decision_logs_total", {"outcome": outcome}) or 0.0


def test_file_events_follow_opa_format_with_masks_applied(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    engine = _engine()
    metrics = Metrics()
    logger = DecisionLogger(
        DecisionLogSettings(sink="file", path=str(path), flush_seconds=0.05), metrics, masker=engine.mask_events
    )
    jwt_input = policy_input(None, jwt=mint_demo_jwt("radiology-apps"))
    jwt_input["context"]["client_ip"] = "10.20.30.40"
    marketing = policy_input("gw-demo-marketing", model="gpt-4o-mini")
    marketing["context"]["client_ip"] = "10.9.9.9"

    async def scenario() -> None:
        await logger.start()
        for item in (jwt_input, marketing):
            logger.record(item, engine.decide_sync(item), path="gateway/decision", eval_ns=1234)
        await asyncio.sleep(0.3)
        await logger.close()

    asyncio.run(scenario())
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert set(first) >= {
        "labels",
        "decision_id",
        "bundles",
        "path",
        "input",
        "result",
        "requested_by",
        "timestamp",
        "metrics",
    }
    assert first["path"] == "gateway/decision"
    assert first["bundles"]["gateway"]["revision"] == bundle.read(SHIPPED_BUNDLE.read_bytes()).revision
    assert first["metrics"] == {"timer_rego_query_eval_ns": 1234}
    assert first["result"]["team"] == "radiology-apps" and first["result"]["allow"] is True
    assert "jwt" not in first["input"]["principal"] and first["erased"] == ["/input/principal/jwt"]
    assert first["input"]["context"]["client_ip"] == "redacted" and first["masked"] == ["/input/context/client_ip"]
    assert "10.20.30.40" not in path.read_text()
    assert second["input"]["context"]["client_ip"] == "10.9.9.9"  # not PHI: the address stays
    assert _count(metrics, "written") == 2


def test_http_sink_gets_gzipped_batches_and_a_failing_sink_is_retried(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []
    answers = [503, 503, 200]

    async def logs(request: web.Request) -> web.Response:
        assert request.headers["Content-Encoding"] == "gzip"
        status = answers.pop(0) if answers else 200
        if status == 200:
            received.extend(json.loads(await request.read()))  # aiohttp has already undone the gzip
        return web.Response(status=status)

    async def scenario() -> Metrics:
        app = web.Application()
        app.router.add_post("/logs", logs)
        runner, port = await serve_local(app)
        metrics = Metrics()
        engine = _engine()
        settings = DecisionLogSettings(
            sink="http", url=f"http://127.0.0.1:{port}/logs", flush_seconds=0.05, max_backoff_seconds=0.2
        )
        logger = DecisionLogger(settings, metrics, masker=engine.mask_events)
        await logger.start()
        for _ in range(5):
            item = policy_input()
            logger.record(item, engine.decide_sync(item), path="gateway/decision", eval_ns=1)
        for _ in range(60):
            if len(received) == 5:
                break
            await asyncio.sleep(0.05)
        await logger.close()
        await runner.cleanup()
        return metrics

    metrics = asyncio.run(scenario())
    assert len(received) == 5, "nothing lost across the sink's failures"
    assert len({e["decision_id"] for e in received}) == 5
    assert _count(metrics, "retried") >= 10  # two failed posts of five events


def test_dead_sink_drops_and_counts_without_blocking_requests() -> None:
    metrics = Metrics()
    settings = DecisionLogSettings(
        sink="http", url="http://127.0.0.1:1/logs", max_buffer=50, flush_seconds=0.01, timeout_seconds=0.2
    )
    logger = DecisionLogger(settings, metrics)
    engine = _engine()
    item = policy_input()
    decision = engine.decide_sync(item)

    async def scenario() -> float:
        await logger.start()
        started = time.perf_counter()
        for _ in range(500):
            logger.record(item, decision, path="gateway/decision", eval_ns=1)
        elapsed = time.perf_counter() - started
        await logger.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert elapsed < 0.1, "recording never waits for the sink"
    assert logger.pending <= 50
    assert _count(metrics, "dropped") >= 450


def test_mask_that_cannot_be_evaluated_erases_the_whole_input(tmp_path: Path) -> None:
    bad_mask = b"package system.log\n\nmask contains x if { x := 1 / input.metrics.zero }\n"
    entries = {".manifest": b'{"revision": "m", "roots": ["gateway", "system"]}', "system/log/mask.rego": bad_mask}
    for source in sorted(REGO.rglob("*.rego")):
        if "system" not in source.parts:
            entries[source.relative_to(REGO).as_posix()] = source.read_bytes()
    entries["gateway/config/data.json"] = (REGO / "gateway" / "config" / "data.json").read_bytes()
    engine = _engine(bundle._pack(entries))
    event = {
        "decision_id": "d",
        "input": {"principal": {"jwt": "secret.token.here"}},
        "result": {},
        "metrics": {"zero": 0},
    }
    [masked] = asyncio.run(engine.mask_events([event]))
    assert "input" not in masked and masked["erased"] == ["/input"]


def test_drop_rule_keeps_events_out(tmp_path: Path) -> None:
    drop_all = b"package system.log\n\ndrop := true\n"
    entries = {".manifest": b'{"revision": "d", "roots": ["gateway", "system"]}', "system/log/drop.rego": drop_all}
    entries["gateway/x.rego"] = b"package gateway\n\ndecision := {}\n"
    engine = _engine(bundle._pack(entries))
    assert asyncio.run(engine.mask_events([{"decision_id": "d", "input": {}, "result": {}}])) == []


def test_cached_decisions_each_get_their_own_event_and_masks_never_touch_the_cache(tmp_path: Path) -> None:
    """Three identical requests, the last two answered from the decision cache: three events, three ids, and
    a mask erasing part of the result does not change what the next hit returns."""
    mask = b"""package system.log

import rego.v1

mask contains "/result/routes"
"""
    shipped = bundle.read(SHIPPED_BUNDLE.read_bytes())
    files = {name: content for name, content in shipped.files.items() if not name.startswith("system/")}
    files["system/log/mask.rego"] = mask
    engine = _engine(bundle._pack(files))
    path = tmp_path / "decisions.jsonl"
    logger = DecisionLogger(
        DecisionLogSettings(sink="file", path=str(path), flush_seconds=0.05), Metrics(), masker=engine.mask_events
    )
    item = policy_input("gw-demo-marketing", model="gpt-4o-mini")

    async def scenario() -> list[Any]:
        await logger.start()
        routes = []
        for _ in range(3):
            decision = engine.decide_sync(item)
            routes.append(decision.routes)
            logger.record(item, decision, path="gateway/decision", eval_ns=1)
            await asyncio.sleep(0.2)  # the mask runs; the cache's verification lands
        await logger.close()
        return routes

    routes = asyncio.run(scenario())
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(events) == 3 and len({e["decision_id"] for e in events}) == 3
    assert all("routes" not in e["result"] and e["erased"] == ["/result/routes"] for e in events)
    assert routes[0] and routes[0] == routes[1] == routes[2]  # every hit still routes
    stats = engine.cache_stats()
    assert stats["hits"] == 2 and stats["mismatched"] == 0  # requests 2 and 3 were hits
