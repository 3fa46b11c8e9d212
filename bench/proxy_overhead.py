"""Gateway overhead vs. direct upstream vs. a bare proxy, measured in one run.

    make bench-proxy            (or: .venv/bin/python bench/proxy_overhead.py [--seconds 8])

Needs Debian's nginx and wrk (the Makefile target installs them when run as root).
nginx on 127.0.0.1 returns a fixed chat completion; wrk drives each target at
1, 16 and 64 connections: nginx directly, a bare Starlette+aiohttp pass-through
proxy (bench/bare_proxy.py, the floor for this stack), and `gateway serve` with
policy, metering, logging (to a file) and metrics on. Each server is one process.
Prints requests/s and latency p50/p99 per target and concurrency, the gateway's
share of the bare proxy's throughput, and its added p50 latency.

Beside each run, CPU from /proc: the target's own (its process and children, e.g. the
workers) per request, and how many of the machine's cores were busy (wrk, nginx,
Redis and the kernel included). On a machine this small they explain the ratios: a
gateway using 5x the bare proxy's CPU per request serves about a fifth of its
requests, and N workers can go at most as far as the cores the one-worker run left
idle (printed as the "ceiling").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.policy import bundle  # noqa: E402
from tests.harness import RedisServer  # noqa: E402
from tests.opa_double import OpaDouble  # noqa: E402

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Fixed answer for the benchmark."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 22, "completion_tokens": 6, "total_tokens": 28},
}
REQUEST = {
    "model": "gpt-4o",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Summarise the literature on statins in two lines."}],
}
KEY = "gw-demo-eu-research"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def start_nginx(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    body = json.dumps(COMPLETION).replace("'", "\\'")
    conf = work / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    return proc, port


def bench_bundle(work: Path) -> Path:
    """The shipped policy with budgets so large that metering never refuses during the benchmark."""
    path = work / "bench.tar.gz"
    if path.exists():
        return path
    rego = work / "rego"
    shutil.copytree(ROOT / "rego", rego)
    data = rego / "gateway" / "config" / "data.json"
    config = json.loads(data.read_text())
    for team in config["teams"].values():
        team["tokens_per_minute"] = 10**12
    data.write_text(json.dumps(config))
    path.write_bytes(bundle.build(rego))
    return path


def gateway_config(
    work: Path,
    nginx_port: int,
    port: int,
    redis_url: str | None = None,
    opa_url: str | None = None,
    workers: int = 1,
    cache_entries: int = 10_000,
) -> Path:
    """The benchmark's gateway configuration file: three OpenAI-shaped providers, all nginx."""
    providers = [
        {
            "name": name,
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{nginx_port}/v1",
            "models": {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini"},
            "limits": {"tokens_per_minute": 10**12, "requests_per_minute": 10**9},
        }
        for name in ("openai-us", "azure-us-east", "azure-eu-west")
    ]
    config = {
        "listen": {"host": "127.0.0.1", "port": port, "workers": workers},
        "policy": {"bundle": str(bench_bundle(work)), "poll_seconds": 0, "decision_cache_entries": cache_entries},
        "providers": providers,
        "prices": {"gpt-4o": {"input": 2.5, "output": 10.0}, "gpt-4o-mini": {"input": 0.15, "output": 0.6}},
        "ledger": {"path": str(work / f"ledger-{port}.db"), "spill_path": str(work / f"ledger-{port}.spill")},
    }
    if redis_url:
        config["state"] = {"redis_url": redis_url, "timeout_ms": 200}
    if opa_url:
        config["policy"] = {"engine": "opa", "opa_url": opa_url, "timeout_ms": 500}
    config_path = work / f"gateway-{port}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def start_gateway(
    work: Path,
    nginx_port: int,
    redis_url: str | None = None,
    opa_url: str | None = None,
    workers: int = 1,
    cache_entries: int = 10_000,
    env: dict[str, str] | None = None,
    root: Path = ROOT,
) -> tuple[subprocess.Popen[bytes], int]:
    """`gateway serve` on a free port in front of nginx; `root`: the checkout whose code runs (another
    worktree, to measure a change against the code before it in one run)."""
    port = free_port()
    config_path = gateway_config(work, nginx_port, port, redis_url, opa_url, workers, cache_entries)
    log = open(work / f"gateway-{port}.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config_path)],
        cwd=root,  # `python -m gateway` imports the package from here first
        stdout=log,
        stderr=log,
        env={**os.environ, **(env or {})},
    )
    wait_port(port)
    return proc, port


def stop_all(processes: list[subprocess.Popen[bytes]], redis: RedisServer | None, work: Path) -> None:
    """Stop what a benchmark started: each process by its PID (SIGTERM, then wait), Redis, the work folder."""
    for proc in processes:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    if redis is not None:
        redis.stop()
    shutil.rmtree(work, ignore_errors=True)


def upstream_url(nginx_port: int) -> str:
    return f"http://127.0.0.1:{nginx_port}/v1/chat/completions"


def start_bare(nginx_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    upstream = upstream_url(nginx_port)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bare_proxy.py"), upstream, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def wrk_script(work: Path) -> Path:
    """The wrk Lua script that POSTs the benchmark's chat request with the benchmark team's key."""
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(REQUEST))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
    )
    return script


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its living descendants."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0.0) for p in tree)


def measure(port: int, pid: int, connections: int, seconds: int, script: Path) -> dict[str, float]:
    """wrk against one target, with the target's CPU per request and the machine's busy cores meanwhile."""
    cpu_before, (busy_before, total_before) = _tree_cpu(pid), _busy_jiffies()
    result = wrk(port, connections, seconds, script)
    cpu_after, (busy_after, total_after) = _tree_cpu(pid), _busy_jiffies()
    requests = max(1.0, result["rps"] * seconds)
    result["cpu_us"] = (cpu_after - cpu_before) / requests * 1e6
    result["busy_cores"] = (busy_after - busy_before) / max(1, total_after - total_before) * (os.cpu_count() or 1)
    return result


def wrk(port: int, connections: int, seconds: int, script: Path) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(out, "50%"),
        "p99": _ms(out, "99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def _ms(out: str, label: str) -> float:
    match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--redis", action="store_true", help="gateway state in a local redis-server (shared budgets)")
    parser.add_argument(
        "--opa-double", action="store_true", help="policy.engine: opa, against the OPA REST test double"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="also run the gateway with this many workers (implies --redis)"
    )
    parser.add_argument("--no-cache-run", action="store_true", help="also run a gateway with the decision cache off")
    parser.add_argument("--compare-env", help="also run a gateway with this KEY=VALUE in its environment")
    args = parser.parse_args()
    if args.workers > 1:
        args.redis = True
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    script = wrk_script(work)
    procs: list[subprocess.Popen[bytes]] = []
    cleanup: list[Callable[[], None]] = []
    try:
        nginx, nginx_port = start_nginx(work)
        procs.append(nginx)
        bare, bare_port = start_bare(nginx_port)
        procs.append(bare)
        redis_url = None
        if args.redis:
            redis = RedisServer().start()
            cleanup.append(redis.stop)
            redis_url = redis.url
        opa_url = None
        if args.opa_double:
            double = OpaDouble(bench_bundle(work).read_bytes()).start()
            cleanup.append(double.stop)
            opa_url = double.url
        gateway, gateway_port = start_gateway(work, nginx_port, redis_url, opa_url)
        procs.append(gateway)
        targets = {"direct (nginx)": nginx_port, "bare proxy": bare_port, "gateway": gateway_port}
        pids = {"direct (nginx)": nginx.pid, "bare proxy": bare.pid, "gateway": gateway.pid}
        if args.compare_env:
            key, _, value = args.compare_env.partition("=")
            variant, variant_port = start_gateway(work, nginx_port, redis_url, opa_url, env={key: value})
            procs.append(variant)
            targets[f"gateway {key[-12:]}={value}"] = variant_port
            pids[f"gateway {key[-12:]}={value}"] = variant.pid
        if args.no_cache_run:
            uncached, uncached_port = start_gateway(work, nginx_port, redis_url, opa_url, cache_entries=0)
            procs.append(uncached)
            targets["gateway, no cache"] = uncached_port
            pids["gateway, no cache"] = uncached.pid
        if args.workers > 1:
            several, several_port = start_gateway(work, nginx_port, redis_url, opa_url, workers=args.workers)
            procs.append(several)
            targets[f"gateway x{args.workers}"] = several_port
            pids[f"gateway x{args.workers}"] = several.pid
        for port in targets.values():  # warm up pools, prepared queries, tokenizer
            wrk(port, 4, 2, script)
        results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in targets}
        for connections in [int(c) for c in args.connections.split(",")]:
            for name, port in targets.items():
                results[name][connections] = measure(port, pids[name], connections, args.seconds, script)
        _report(results)
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for stop in cleanup:
            stop()
        if os.environ.get("BENCH_KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)


def _report(results: dict[str, dict[int, dict[str, float]]]) -> None:
    print(
        f"{'target':<30} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'cpu us/req':>10} {'busy cores':>10}"
    )
    for name, by_conn in results.items():
        for connections, r in by_conn.items():
            print(
                f"{name:<30} {connections:>5} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['errors']:>8.0f} "
                f"{r['cpu_us']:>10.0f} {r['busy_cores']:>10.2f}"
            )
    print()
    several = next((n for n in results if n.startswith("gateway x")), None)
    cores = os.cpu_count() or 1
    if several:
        for connections in results["gateway"]:
            one = results["gateway"][connections]
            ratio = results[several][connections]["rps"] / one["rps"]
            ceiling = cores / max(one["busy_cores"], 1e-9)
            print(
                f"c={connections:<3} {several} / one worker req/s = {ratio:.2f}x   (ceiling on this machine: "
                f"{cores} cores / {one['busy_cores']:.2f} busy in the one-worker run = {ceiling:.2f}x)"
            )
    for connections in results["gateway"]:
        gw, bare = results["gateway"][connections], results["bare proxy"][connections]
        print(
            f"c={connections:<3} gateway CPU per request = {gw['cpu_us'] / bare['cpu_us']:.2f}x the bare proxy's "
            f"({gw['cpu_us']:.0f} vs {bare['cpu_us']:.0f} us)"
        )
    for connections in results["gateway"]:
        gw, bare, direct = (results[n][connections] for n in ("gateway", "bare proxy", "direct (nginx)"))
        print(
            f"c={connections:<3} gateway/bare req/s = {gw['rps'] / bare['rps']:.0%}   "
            f"added p50 vs direct: gateway {gw['p50'] - direct['p50']:.3f} ms, "
            f"bare {bare['p50'] - direct['p50']:.3f} ms   "
            f"gateway p50 over bare: {gw['p50'] - bare['p50']:.3f} ms"
        )


if __name__ == "__main__":
    main()
