"""CPU time the gateway process spends per request, under load: the number that bounds its throughput.

    .venv/bin/python bench/cpu_per_request.py [--redis] [--connections 16] [--seconds 10]

Starts nginx (the upstream, as in proxy_overhead.py) and one `gateway serve`, drives it with wrk, and
reads the process's CPU (user + system, every thread) from /proc before and after. Prints req/s, the
share of one core the gateway used, and microseconds of CPU per request. When the gateway uses a core
or more, CPU per request is what to cut.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import proxy_overhead as bench  # noqa: E402
from tests.harness import RedisServer  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of the process and of its child processes (workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue  # a thread that ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / tick
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--redis", action="store_true", help="gateway state in a local redis-server")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes (more than one implies --redis)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gw-cpu-"))
    script = bench.wrk_script(work)
    redis = RedisServer().start() if args.redis or args.workers > 1 else None
    nginx, nginx_port = bench.start_nginx(work)
    gateway, port = bench.start_gateway(work, nginx_port, redis.url if redis else None, workers=args.workers)
    try:
        bench.wrk(port, 4, 2, script)  # warm up
        before, started = cpu_seconds(gateway.pid), time.monotonic()
        result = bench.wrk(port, args.connections, args.seconds, script)
        used, elapsed = cpu_seconds(gateway.pid) - before, time.monotonic() - started
        requests = result["rps"] * args.seconds
        print(f"{result['rps']:.0f} req/s at c={args.connections}, p50 {result['p50']:.2f} ms")
        print(
            f"gateway CPU ({args.workers} process{'es' if args.workers > 1 else ''}): {used / elapsed:.0%} of one "
            f"core, {used / requests * 1e6:.0f} µs per request"
        )
    finally:
        for proc in (gateway, nginx):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
