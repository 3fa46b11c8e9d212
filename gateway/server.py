"""`gateway serve`: one uvicorn process, logs as JSON lines, no access log."""

from __future__ import annotations

import logging

import uvicorn

from gateway import settings as settings_module
from gateway.app import build_app
from gateway.frontdoor import guarded_protocol
from gateway.observe import logs


def serve(*, config_path: str | None, host: str | None, port: int | None) -> int:
    settings = settings_module.load(config_path)
    logs.configure(level=getattr(logging, settings.log_level.upper()))
    app = build_app(settings)
    uvicorn.run(
        app,
        host=host or settings.listen.host,
        port=port if port is not None else settings.listen.port,
        log_config=None,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http=guarded_protocol(settings.listen),  # header size, count and time limits (frontdoor.py)
        ws="none",  # no WebSockets: an upgrade request is plain HTTP, and nothing logs its URL
        timeout_graceful_shutdown=10,
    )
    return 0
