"""Instructions per request, counted by valgrind: the gateway's cost in the one unit that does not drift.

    make bench-instructions      (or: .venv/bin/python bench/instructions.py [--requests 400]
                                      [--compare-tree PATH ...] [--redis])

Why: these machines are shared, and the same gateway's CPU time per request moves by up to 1.5x within a
minute (bench/cpu_per_request.py shows rounds of 2,600 and 4,900 µs back to back), which hides a 10%
change. valgrind's callgrind counts the instructions a program executes, the same count for the same code
and input whatever the neighbours do.

How: nginx answers as upstream (as in proxy_overhead.py). Each gateway runs in-process under
`valgrind --tool=callgrind --instr-atstart=no`: the app is built and started uninstrumented, warmed up
with 32 requests (decision cache, upstream connections), then instrumentation is switched on
(callgrind_control -i on) for `--requests` chat completions sent straight to the ASGI app, 16 at a time,
and off again. Instructions / requests is what the gateway's own code costs per request, everything from
the ASGI call to the answer plus the background work they cause (ledger flusher, settlements), without
uvicorn's HTTP parsing or the kernel. The bare proxy (bench/bare_proxy.py) is counted the same way,
the floor for this stack. --compare-tree runs the same for another checkout (a `git worktree`
of the commit before a change), so a change's effect is one ratio; --compare-env
KEY=VALUE the same with that setting (GATEWAY_LISTEN__GC_THRESHOLD=0, say).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 16
WARM_UP = 32


def _scope(body: bytes, key: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _one(app: Any, body: bytes, key: str) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(body, key), receive, send)
    return status


async def _requests(app: Any, count: int) -> None:
    from bench.proxy_overhead import KEY, REQUEST

    body = json.dumps(REQUEST).encode()

    async def worker(n: int) -> None:
        for _ in range(n):
            status = await _one(app, body, KEY)
            if status != 200:
                raise SystemExit(f"the gateway answered {status}")

    share, extra = divmod(count, CONCURRENCY)
    await asyncio.gather(*(worker(share + (1 if i < extra else 0)) for i in range(CONCURRENCY)))


async def _child(config: str, count: int) -> None:
    """Runs under valgrind: start the gateway, warm it up, then the measured requests between two lines."""
    if config.startswith("bare:"):  # bench/bare_proxy.py: the floor for this stack
        from bench.bare_proxy import build

        app: Any = build(config.removeprefix("bare:"))
    else:
        from gateway import settings as settings_module
        from gateway.app import build_app
        from gateway.observe import logs
        from gateway.server import tune_gc

        settings = settings_module.load(config)
        logs.configure(open(os.devnull, "w"), level=logging.INFO)  # noqa: SIM115 - as `gateway serve`: a JSON line each
        app = build_app(settings)
        app.state.after_start = [lambda: tune_gc(settings.listen.gc_threshold)]  # as `gateway serve` does
    async with app.router.lifespan_context(app):
        await _requests(app, WARM_UP)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await _requests(app, count)
        print("done", flush=True)
        await asyncio.to_thread(sys.stdin.readline)


def count_instructions(
    root: Path, config: Path | str, requests: int, out: Path, env: dict[str, str] | None = None
) -> int:
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(config),
            str(requests),
        ],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(errors := out.with_suffix(".stderr").open("w")),
        env={"PYTHONPATH": f"{root}:{ROOT}", "GOGC": "400", "PATH": "/usr/bin:/bin", **(env or {})},
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for expected, switch in (("ready", "on"), ("done", "off")):
            line = proc.stdout.readline().strip()
            if line != expected:
                proc.kill()
                proc.wait()
                tail = [t for t in out.with_suffix(".stderr").read_text().splitlines() if not t.startswith("==")]
                raise RuntimeError(f"the gateway under valgrind said {line!r}, not {expected!r}: {tail[-20:]}")
            subprocess.run(["callgrind_control", "-i", switch, str(proc.pid)], check=True, capture_output=True)
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.wait(600)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        errors.close()
    totals = [int(m.group(1)) for m in re.finditer(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)]
    if not totals:
        raise RuntimeError(f"no instruction count in {out}")
    return max(totals)


def counted(root: Path, config: Path | str, requests: int, out: Path, env: dict[str, str] | None = None) -> int:
    """count_instructions, once more if valgrind itself dies (it aborts now and then in its own allocator,
    about one run in six here, whatever the code under it)."""
    try:
        return count_instructions(root, config, requests, out, env)
    except RuntimeError as exc:
        print(f"(retrying once: {str(exc)[:80]})", file=sys.stderr)
        return count_instructions(root, config, requests, out, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "REQUESTS"), help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--redis", action="store_true", help="gateway state in a local redis-server")
    parser.add_argument("--compare-tree", action="append", default=[], help="the same for this checkout")
    parser.add_argument("--compare-env", action="append", default=[], help="the same with KEY=VALUE set")
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(_child(args.child[0], int(args.child[1])))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (Debian's valgrind package)")
    sys.path.insert(0, str(ROOT))
    from bench import proxy_overhead as bench
    from tests.harness import RedisServer

    work = Path(tempfile.mkdtemp(prefix="gw-instr-"))
    redis = RedisServer().start() if args.redis else None
    nginx, nginx_port = bench.start_nginx(work)
    try:
        runs: dict[str, tuple[Path, dict[str, str]]] = {"this checkout": (ROOT, {})}
        runs.update({f"tree {t}": (Path(t).resolve(), {}) for t in args.compare_tree})
        runs.update({pair: (ROOT, dict([pair.split("=", 1)])) for pair in args.compare_env})
        counts = {}
        for name, (root, env) in runs.items():
            config = bench.gateway_config(work, nginx_port, bench.free_port(), redis.url if redis else None)
            total = counted(root, config, args.requests, work / "callgrind.out", env)
            counts[name] = total / args.requests
            print(f"{name}: {counts[name] / 1e6:.2f} M instructions per request ({args.requests} requests)")
        bare = counted(ROOT, f"bare:{bench.upstream_url(nginx_port)}", args.requests, work / "bare.out")
        print(f"bare proxy: {bare / args.requests / 1e6:.2f} M instructions per request")
        first = counts["this checkout"]
        print(f"this checkout / bare proxy: {first / (bare / args.requests):.2f}")
        for name, per_request in list(counts.items())[1:]:
            print(f"this checkout / {name}: {first / per_request:.3f}")
    finally:
        bench.stop_all([nginx], redis, work)


if __name__ == "__main__":
    main()
