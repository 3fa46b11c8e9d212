"""`gateway serve --workers N`: N gateway processes on one port, the kernel spreading connections.

The parent binds nothing and serves nothing: it starts N children (`gateway serve --worker I/N`), each of
which binds the port with SO_REUSEPORT (Linux balances new connections across them), and it stops them,
by PID, when it is told to stop or when one of them dies (a half-fleet is worse than a restart by the
process manager). What the children share:
    budgets, breakers, cool-downs, owners, dollar windows   Redis (required: N > 1 without it is refused)
    /metrics                                               Prometheus multiprocess files in a directory the
                                                            parent creates (PROMETHEUS_MULTIPROC_DIR), summed
                                                            at scrape time by whichever worker answers
    the ledger                                             one database; each worker its own hash chain and
                                                            its own spill file (`<spill_path>.<worker>`)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def run_workers(count: int, argv: list[str]) -> int:
    """Start `count` children running `gateway serve <argv> --worker i/count`; return when they are gone."""
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    env = {**os.environ, MULTIPROC_ENV: metrics_dir}
    children = [
        subprocess.Popen([sys.executable, "-m", "gateway", "serve", *argv, "--worker", f"{i}/{count}"], env=env)
        for i in range(count)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        while not stopping:
            exited = [c for c in children if c.poll() is not None]
            if exited:
                code = exited[0].returncode or 1
                break
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0 if stopping else code
