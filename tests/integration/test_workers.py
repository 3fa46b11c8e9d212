"""`gateway serve` with two workers on one port: both serve (two hash chains in the ledger), /metrics sums
every worker, budgets live in Redis, the parent stops its children by PID, and without Redis it refuses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import yaml

from gateway.demo.standins import StandInServers
from tests.factories import ROOT
from tests.harness import GatewayProcess, RedisServer, gateway_config


def test_two_workers_share_a_port_metrics_and_the_ledger(standins: StandInServers, tmp_path: Path) -> None:
    with RedisServer() as redis:
        config = gateway_config(standins, state={"redis_url": redis.url, "timeout_ms": 2000})
        config["listen"] = {"workers": 2}
        gateway = GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": "workers-admin"}, workdir=tmp_path)
        with gateway:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
            sent = 60
            for _ in range(sent):  # a new connection each time: the kernel spreads them over the workers
                reply = httpx.post(
                    gateway.base_url + "/v1/chat/completions",
                    json=body,
                    headers={"Authorization": "Bearer gw-demo-marketing", "Connection": "close"},
                )
                assert reply.status_code == 200
            assert gateway.proc is not None
            children = subprocess.run(
                ["ps", "--ppid", str(gateway.proc.pid), "-o", "pid="], capture_output=True, text=True
            ).stdout.split()
            assert len(children) == 2
            metrics = httpx.get(gateway.base_url + "/metrics", headers={"Authorization": "Bearer workers-admin"}).text
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("gateway_requests_total{") and 'team="marketing"' in line
            )
            assert total == sent  # whichever worker answered the scrape, it counted both
        time.sleep(0.5)
        assert all(subprocess.run(["kill", "-0", pid], capture_output=True).returncode != 0 for pid in children)
        with sqlite3.connect(config["ledger"]["path"]) as db:
            instances = db.execute("SELECT COUNT(DISTINCT instance), COUNT(*) FROM ledger_rows").fetchone()
        assert instances == (2, sent)  # both workers served, each its own chain


def test_workers_without_redis_are_refused(standins: StandInServers, tmp_path: Path) -> None:
    config = {**gateway_config(standins), "listen": {"host": "127.0.0.1", "port": 1, "workers": 2}}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "needs state.redis_url" in done.stderr and "Traceback" not in done.stderr
