"""A private Redis Cluster for tests: three masters and three replicas, redis-server in cluster mode on free
loopback ports, joined with `redis-cli --cluster create`; each node stopped by its PID."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _cluster_port() -> int:
    """A free loopback port whose cluster-bus port (port + 10000) is valid and free too."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisCluster:
    def __init__(self) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed: run scripts/ensure-redis")
        self.binary, self.cli = binary, cli
        self.dir = Path(tempfile.mkdtemp(prefix="gw-cluster-"))
        self.ports = [_cluster_port() for _ in range(6)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def _start_node(self, port: int) -> None:
        args = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.dir / f"nodes-{port}.conf"),
            "--cluster-node-timeout",
            "1000",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> RedisCluster:
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            self._wait(port, "PONG", ["ping"])
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            self._wait(port, "cluster_state:ok", ["cluster", "info"])
        for port in self.ports:  # replicas in sync with their masters, or a failover would lose writes
            info = subprocess.run([self.cli, "-p", str(port), "info", "replication"], capture_output=True, text=True)
            if "role:slave" in info.stdout:
                self._wait(port, "master_link_status:up", ["info", "replication"])
        return self

    def _wait(self, port: int, expected: str, command: list[str], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out = subprocess.run(
                [self.cli, "-p", str(port), *command], capture_output=True, text=True, timeout=5
            ).stdout
            if expected in out:
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis node {port} never answered {expected}")

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot."""
        out = subprocess.run(
            [self.cli, "-p", str(self.ports[0]), "cluster", "keyslot", key], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        slot = int(out)
        nodes = subprocess.run(
            [self.cli, "-p", str(self.ports[0]), "cluster", "nodes"], capture_output=True, text=True, timeout=5
        ).stdout
        for line in nodes.splitlines():
            fields = line.split()
            if "master" in fields[2] and "fail" not in fields[2]:
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return int(fields[1].split(":")[1].split("@")[0])
        raise RuntimeError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """Stop one node by its PID, as a crash would (its replica is promoted after the node timeout)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def replica_of(self, master_port: int) -> int:
        nodes = subprocess.run(
            [self.cli, "-p", str(next(p for p in self.ports if p != master_port)), "cluster", "nodes"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        ids = {line.split()[0]: line.split()[1] for line in nodes.splitlines()}
        master_id = next(i for i, addr in ids.items() if addr.startswith(f"127.0.0.1:{master_port}@"))
        for line in nodes.splitlines():
            fields = line.split()
            if "slave" in fields[2] and fields[3] == master_id:
                return int(fields[1].split(":")[1].split("@")[0])
        raise RuntimeError(f"no replica of {master_port}")

    def wait_promoted(self, replica_port: int, seconds: float = 30) -> float:
        """Wait for the cluster itself to promote this replica (no command: the other masters vote once the
        node timeout passes); the seconds it took."""
        started = time.monotonic()
        self._wait(replica_port, "role:master", ["info", "replication"], seconds)
        return time.monotonic() - started

    def wait_healthy(self, seconds: float = 30) -> None:
        alive = [p for p, proc in self.procs.items() if proc.poll() is None]
        for port in alive:
            self._wait(port, "cluster_state:ok", ["cluster", "info"], seconds)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
