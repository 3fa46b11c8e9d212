"""The floor for this stack: a bare Starlette pass-through proxy using the same aiohttp client as the gateway.

python bench/bare_proxy.py UPSTREAM_URL PORT
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(upstream: str) -> Starlette:
    state: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
        yield
        await state["session"].close()

    async def forward(request: Request) -> Response:
        body = await request.body()
        async with state["session"].post(upstream, data=body, headers={"Content-Type": "application/json"}) as resp:
            payload = await resp.read()
            return Response(payload, status_code=resp.status, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    uvicorn.run(
        build(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
