"""A small test double that speaks OPA's REST Data API, backed by the embedded engine for correct answers.

    POST /v1/data/{path}   {"input": ...}  ->  {"result": ..., "decision_id": ..., "provenance": {...}}
                                               (no "result" key when the document is undefined)
    GET  /health?bundles   200 once a bundle is loaded

Faults are scripted per request: latency, an HTTP status, a garbage body, a dropped connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opa_bindings import OpaError, OpaUndefinedError

from gateway.demo.standins import BackgroundLoop, serve_local
from gateway.policy import bundle
from gateway.policy.compiler import compile_engine


@dataclass(frozen=True)
class Fault:
    latency: float = 0.0
    status: int = 200
    garbage: bool = False
    drop: bool = False


class OpaDouble:
    def __init__(self, blob: bytes) -> None:
        parsed = bundle.read(blob)
        self.revision = parsed.revision
        self._engine = compile_engine(parsed.modules, parsed.data)
        self.faults: deque[Fault] = deque()
        self.default = Fault()
        self.requests = 0
        self.strict_queries = 0  # queries that asked for ?strict-builtin-errors
        self.port = 0
        self._background: BackgroundLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _data(self, request: web.Request) -> web.StreamResponse:
        """Decisions count in `requests` and meet the scripted faults; other documents are simply answered."""
        if request.match_info["path"].strip("/") != "gateway/decision":
            return await self._answer(request)
        self.requests += 1
        fault = self.faults.popleft() if self.faults else self.default
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if fault.status != 200:
            return web.json_response({"code": "internal_error", "message": "scripted"}, status=fault.status)
        if fault.garbage:
            return web.Response(body=b"<html>not json", content_type="application/json")
        return await self._answer(request)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        path = request.match_info["path"].strip("/").replace("/", ".")
        answer: dict[str, Any] = {"decision_id": str(uuid.uuid4())}
        if "provenance" in request.query:
            answer["provenance"] = {"version": "double", "bundles": {"gateway": {"revision": self.revision}}}
        self.strict_queries += "strict-builtin-errors" in request.query
        try:
            answer["result"] = self._engine.eval_document(path, body.get("input"))
        except OpaUndefinedError:
            pass
        except OpaError as exc:  # as OPA answers a strict-builtin-errors query whose built-in failed
            if "strict-builtin-errors" not in request.query:  # OPA would be non-strict: this double cannot be
                return web.json_response({"code": "not_implemented", "message": "non-strict"}, status=501)
            error = {"code": "internal_error", "message": exc.message, "errors": [{"code": exc.code}]}
            return web.json_response(error, status=500)
        return web.json_response(answer)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def start(self) -> OpaDouble:
        app = web.Application()
        app.router.add_post("/v1/data/{path:.*}", self._data)
        app.router.add_get("/health", self._health)
        self._background = BackgroundLoop("opa-double")
        self._runner, self.port = self._background.run(serve_local(app))
        return self

    def stop(self) -> None:
        if self._background is not None:
            if self._runner is not None:
                self._background.run(self._runner.cleanup())
            self._background.close()
            self._background = None
        self._engine.close()
