"""Run real things for integration tests: stand-in providers, the gateway in a thread or as a process, Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import uvicorn
import yaml

from gateway.app import build_app
from gateway.demo.standins import StandInServers, demo_standins, provider_config
from gateway.settings import Settings, from_dict
from tests.factories import ROOT, SHIPPED_BUNDLE

PRICES = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "claude-sonnet-4": {"input": 3.00, "output": 15.00},
    "text-embedding-3-small": {"input": 0.02, "output": 0.0},
}
ADMIN_TOKEN = "test-admin-token"


_SDK_CLIENTS: list[openai.OpenAI] = []


def sdk_client(base_url: str, key: str, *, timeout: float = 30, **headers: str) -> openai.OpenAI:
    """The official openai SDK pointed at the gateway; closed after the test (tests/conftest.py)."""
    made = openai.OpenAI(
        base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=timeout, default_headers=headers or None
    )
    _SDK_CLIENTS.append(made)
    return made


def close_sdk_clients() -> None:
    while _SDK_CLIENTS:
        _SDK_CLIENTS.pop().close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_config(standins: StandInServers, **overrides: Any) -> dict[str, Any]:
    timeout = overrides.pop("timeout_seconds", 5.0)
    ledger_dir = Path(tempfile.mkdtemp(prefix="gw-ledger-"))
    config: dict[str, Any] = {
        "ledger": {"path": str(ledger_dir / "ledger.db"), "spill_path": str(ledger_dir / "ledger.spill")},
        "policy": {"bundle": str(SHIPPED_BUNDLE), "poll_seconds": 0},
        "providers": [provider_config(s, timeout_seconds=timeout) for s in standins.standins.values()],
        "prices": PRICES,
        "breaker": {"min_requests": 4, "window_seconds": 10, "open_seconds": 1, "failure_ratio": 0.5},
        "queue": {"max_wait_seconds": 3, "max_depth": 100},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class GatewayThread:
    """The real app under uvicorn, in a thread of this process (for tests that call it with the SDK)."""

    def __init__(self, settings: Settings, *, span_exporter: Any = None) -> None:
        self.settings = settings
        self.app = build_app(settings, span_exporter=span_exporter)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="on", loop="asyncio")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self._sock]))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(15)
        self._sock.close()

    @property
    def components(self) -> Any:
        return self.app.state.components


class GatewayProcess:
    """`python -m gateway serve` as users run it, its stdout and stderr captured to files."""

    def __init__(
        self, config: dict[str, Any], *, env: dict[str, str] | None = None, workdir: Path | None = None
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="gw-"))
        self.config_path = self.workdir / "gateway.yaml"
        self.port = free_port()
        config = {**config, "listen": {**config.get("listen", {}), "host": "127.0.0.1", "port": self.port}}
        self.config_path.write_text(yaml.safe_dump(config))
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
                cwd=ROOT,
                stdout=out,
                stderr=err,
                env=self.env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.stderr_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gateway did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A private redis-server on a free loopback port, no persistence; stopped by PID."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/ensure-redis")
        self.binary = binary
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="gw-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def standins_running() -> Iterator[StandInServers]:
    servers = StandInServers(demo_standins()).start_in_thread()
    try:
        yield servers
    finally:
        servers.stop_thread()


def settings_for(standins: StandInServers, **overrides: Any) -> Settings:
    return from_dict(gateway_config(standins, **overrides))
