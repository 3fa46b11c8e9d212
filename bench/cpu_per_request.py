"""CPU time the gateway process spends per request, under load: the number that bounds its throughput.

    .venv/bin/python bench/cpu_per_request.py [--redis] [--connections 16] [--seconds 10]
        [--compare-env KEY=VALUE ...] [--rounds 2]

Starts nginx (the upstream, as in proxy_overhead.py) and one `gateway serve`, drives it with wrk, and
reads the process's CPU (user + system, every thread) from /proc before and after. Prints req/s, the
share of one core the gateway used, and microseconds of CPU per request. When the gateway uses a core
or more, CPU per request is what to cut.

--compare-env starts one more gateway per KEY=VALUE (that setting in its environment, e.g.
GATEWAY_LEDGER__STORE=none), --compare-tree one more per checkout (say a `git worktree` of the commit
before a change), and measures them in turn, --rounds times each, interleaved, so that what a feature or
a change costs is read off one run: these shared machines drift by up to 1.5x within a minute, and the
drift then hits every variant alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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


def measure(
    gateway: subprocess.Popen[bytes], port: int, script: Path, connections: int, seconds: int
) -> dict[str, float]:
    before, started = cpu_seconds(gateway.pid), time.monotonic()
    result = bench.wrk(port, connections, seconds, script)
    used, elapsed = cpu_seconds(gateway.pid) - before, time.monotonic() - started
    return {**result, "core": used / elapsed, "us": used / (result["rps"] * seconds) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--redis", action="store_true", help="gateway state in a local redis-server")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes (more than one implies --redis)")
    parser.add_argument("--compare-env", action="append", default=[], help="one more gateway with KEY=VALUE")
    parser.add_argument("--compare-tree", action="append", default=[], help="one more gateway from this checkout")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each gateway, interleaved")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gw-cpu-"))
    script = bench.wrk_script(work)
    redis = RedisServer().start() if args.redis or args.workers > 1 else None
    nginx, nginx_port = bench.start_nginx(work)
    variants: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        url = redis.url if redis else None
        variants["as configured"] = bench.start_gateway(work, nginx_port, url, workers=args.workers)
        for pair in args.compare_env:
            key, _, value = pair.partition("=")
            variants[pair] = bench.start_gateway(work, nginx_port, url, workers=args.workers, env={key: value})
        for tree in args.compare_tree:
            root = Path(tree).resolve()
            variants[f"tree {tree}"] = bench.start_gateway(work, nginx_port, url, workers=args.workers, root=root)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for _gateway, port in variants.values():
            bench.wrk(port, 4, 2, script)  # warm up
        for _ in range(args.rounds):
            for name, (gateway, port) in variants.items():
                results[name].append(measure(gateway, port, script, args.connections, args.seconds))
        processes = f"{args.workers} process{'es' if args.workers > 1 else ''}"
        for name, runs in results.items():
            rps = statistics.median(r["rps"] for r in runs)
            us = statistics.median(r["us"] for r in runs)
            core = statistics.median(r["core"] for r in runs)
            p50 = statistics.median(r["p50"] for r in runs)
            print(f"{name}: {rps:.0f} req/s at c={args.connections}, p50 {p50:.2f} ms")
            print(f"  gateway CPU ({processes}): {core:.0%} of one core, {us:.0f} µs per request")
            if len(runs) > 1:
                rounds = ", ".join(f"{r['us']:.0f}" for r in runs)
                print(f"  µs per request by round: {rounds}")
    finally:
        bench.stop_all([*(gateway for gateway, _ in variants.values()), nginx], redis, work)


if __name__ == "__main__":
    main()
