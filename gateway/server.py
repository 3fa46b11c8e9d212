"""`gateway serve`: one uvicorn process (or, with --workers N, N of them on one port: workers.py), logs as
JSON lines, no access log."""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import socket

import uvicorn

from gateway import settings as settings_module
from gateway.app import build_app
from gateway.errors import ConfigError
from gateway.frontdoor import guarded_protocol
from gateway.observe import logs
from gateway.workers import run_workers


def tune_gc(threshold: int) -> None:
    """Once the gateway has started: everything allocated so far (the tokenizer, the compiled policy, the
    app) moves out of the collector's sight (gc.freeze), and the youngest generation is collected every
    `threshold` allocations instead of Python's 700. The full collections that walked all of that were the
    long pauses at p99 (bench/proxy_overhead.py --compare-env GATEWAY_LISTEN__GC_THRESHOLD=0, c=16: p99
    about 60 ms with Python's defaults, about 20 ms tuned). 0 keeps Python's defaults."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)


def serve(
    *,
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int | None = None,
    worker: str | None = None,
) -> int:
    settings = settings_module.load(config_path)
    count = workers if workers is not None else settings.listen.workers
    if worker is None and count > 1:
        if not settings.state.redis_url:
            raise ConfigError(f"{count} workers need state.redis_url: budgets, breakers and cool-downs must be shared")
        argv = ["--config", config_path] if config_path else []
        argv += [
            "--host",
            host or settings.listen.host,
            "--port",
            str(port if port is not None else settings.listen.port),
        ]
        return run_workers(count, argv)
    if worker is not None:  # one of N: its own ledger spill file
        index = worker.split("/", 1)[0]
        ledger = dataclasses.replace(settings.ledger, spill_path=f"{settings.ledger.spill_path}.{index}")
        settings = dataclasses.replace(settings, ledger=ledger)
    logs.configure(level=getattr(logging, settings.log_level.upper()))
    app = build_app(settings)
    app.state.after_start = [functools.partial(tune_gc, settings.listen.gc_threshold)]
    bind_host = host or settings.listen.host
    bind_port = port if port is not None else settings.listen.port
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http=guarded_protocol(settings.listen),  # header size, count and time limits (frontdoor.py)
        ws="none",  # no WebSockets: an upgrade request is plain HTTP, and nothing logs its URL
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    if worker is None:
        config.host, config.port = bind_host, bind_port
        server.run()
        return 0
    sock = socket.socket(socket.AF_INET6 if ":" in bind_host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the kernel balances connections across workers
    sock.bind((bind_host, bind_port))
    sock.set_inheritable(True)
    server.run(sockets=[sock])
    return 0
