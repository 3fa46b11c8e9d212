"""Polling a bundle URL like OPA's bundle service: ETag, 304, keep the last good bundle."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from gateway.demo.standins import serve_local
from gateway.policy import bundle
from gateway.policy.embedded import EmbeddedEngine
from tests.factories import REGO, copy_rego, policy_input


def test_polls_url_with_etag_and_keeps_last_good(tmp_path: Path) -> None:
    first = bundle.build(REGO, revision="v1")
    rego = copy_rego(tmp_path)
    data = rego / "gateway" / "config" / "data.json"
    data.write_text(data.read_text().replace('"phi": false', '"phi": true', 1))  # eu-research cleared for PHI
    second = bundle.build(rego, revision="v2")
    state = {"blob": first, "etag": '"v1"', "requests": [], "fail": False}

    async def serve_bundle(request: web.Request) -> web.Response:
        state["requests"].append(request.headers.get("If-None-Match"))  # type: ignore[attr-defined]
        if state["fail"]:
            return web.Response(status=500)
        if request.headers.get("If-None-Match") == state["etag"]:
            return web.Response(status=304)
        return web.Response(body=state["blob"], headers={"ETag": str(state["etag"])})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/bundles/gateway.tar.gz", serve_bundle)
        runner, port = await serve_local(app)
        engine = EmbeddedEngine(f"http://127.0.0.1:{port}/bundles/gateway.tar.gz", poll_seconds=0)
        try:
            await engine.start()
            assert engine.revision == "v1"
            phi_eu = policy_input("gw-demo-eu-research", classification="phi")
            assert not engine.decide_sync(phi_eu).allow
            assert await engine.refresh() is False  # 304: nothing new
            state.update(blob=second, etag='"v2"')
            assert await engine.refresh() is True
            assert engine.revision == "v2"
            assert engine.decide_sync(phi_eu).allow
            state["fail"] = True
            assert await engine.refresh() is False
            assert engine.last_error == "bundle server answered HTTP 500"
            assert engine.revision == "v2"
        finally:
            await engine.close()
            await runner.cleanup()
        assert state["requests"] == [None, '"v1"', '"v1"', '"v2"']

    asyncio.run(scenario())
