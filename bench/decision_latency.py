"""Decision latency of the embedded engine over a realistic mix of inputs.

    GOGC=400 .venv/bin/python bench/decision_latency.py [--rounds N]

(`gateway serve` runs with GOGC=400 unless set; run the bench the same way.)

Prints p50/p99 per input kind and overall, with the exact decision cache off
and on (steady state: the answers verified), and the floor: the engine
evaluating `true` with the same input (the cost of crossing into Go and
converting the input), so the policy's own cost is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gateway.demo.auth import mint_demo_jwt
from gateway.policy import bundle
from gateway.policy.embedded import EmbeddedEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from gateway.policy.remote import RemoteEngine  # noqa: E402
from tests.factories import policy_input  # noqa: E402
from tests.opa_double import OpaDouble  # noqa: E402


def _mix() -> dict[str, dict[str, Any]]:
    jwt = mint_demo_jwt("radiology-apps")
    return {
        "phi-allow (cardiology, 2 routes)": policy_input("gw-demo-cardiology", use_case="discharge-summary"),
        "residency-allow (eu-research)": policy_input("gw-demo-eu-research"),
        "content-allow (marketing, 6 routes)": policy_input("gw-demo-marketing", model="gpt-4o-mini"),
        "phi-deny (eu-research)": policy_input("gw-demo-eu-research", classification="phi"),
        "unauthenticated": policy_input("not-a-key"),
        "jwt-allow (radiology-apps)": policy_input(None, jwt=jwt),
    }


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(engine: EmbeddedEngine, mix: dict[str, dict[str, Any]], rounds: int) -> dict[str, list[float]]:
    """Each input kind `rounds` times; the fields the policy never reads (prompt size, client address)
    change on every request, as they do in traffic."""
    rng = random.Random(7)
    results: dict[str, list[float]] = {name: [] for name in mix}
    for _ in range(rounds):
        for name, item in mix.items():
            item = copy.deepcopy(item)
            item["request"]["prompt_tokens"] = rng.randint(1, 100_000)
            item["context"]["client_ip"] = f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            t = time.perf_counter_ns()
            engine.decide_sync(item)
            results[name].append((time.perf_counter_ns() - t) / 1000)
    return results


def _table(title: str, results: dict[str, list[float]]) -> None:
    everything = [x for xs in results.values() for x in xs]
    print(f"\n{title}\n{'input kind':40} {'p50 µs':>8} {'p99 µs':>8}")
    for name, xs in results.items():
        print(f"{name:40} {statistics.median(xs):8.1f} {_percentile(xs, 0.99):8.1f}")
    print(f"{'all (mix)':40} {statistics.median(everything):8.1f} {_percentile(everything, 0.99):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--remote", action="store_true", help="also time OPA server mode against the REST test double")
    args = parser.parse_args()
    blob = bundle.build(ROOT / "rego")
    mix = _mix()
    for label, entries in (("decision cache off", 0), ("decision cache on (exact, steady state)", 10_000)):
        engine = EmbeddedEngine("unused", poll_seconds=0, cache_entries=entries)
        engine.activate(blob)
        for item in mix.values():  # warm prepared queries; with the cache, let its verifications finish
            engine.decide_sync(item)
        time.sleep(0.5)
        for item in mix.values():
            engine.decide_sync(item)
        time.sleep(0.5)
        _table(label, _measure(engine, mix, args.rounds))
        if entries:
            print("cache:", engine.cache_stats(), "(JWT answers read the clock: never cached)")
    active = engine._active
    assert active is not None
    floor: list[float] = []
    sample = mix["phi-allow (cardiology, 2 routes)"]
    for _ in range(args.rounds):
        t = time.perf_counter_ns()
        active.engine.eval_query("true", sample)
        floor.append((time.perf_counter_ns() - t) / 1000)
    print(f"\n{'floor: query `true`, same input':40} {statistics.median(floor):8.1f} {_percentile(floor, 0.99):8.1f}")
    if args.remote:
        remote = asyncio.run(_remote(mix, args.rounds // 3))
        label = "OPA server mode (REST double), mix"
        print(f"{label:40} {statistics.median(remote):8.1f} {_percentile(remote, 0.99):8.1f}")


async def _remote(mix: dict[str, dict[str, Any]], rounds: int) -> list[float]:
    """Decisions over loopback HTTP from the OPA-speaking test double (Python + the embedded engine,
    so slower than a real OPA server; the round trip and client costs are what this shows)."""
    double = OpaDouble((ROOT / "bundles" / "gateway.tar.gz").read_bytes()).start()
    engine = RemoteEngine(double.url, timeout_ms=1000)
    await engine.start()
    samples: list[float] = []
    try:
        for item in mix.values():
            await engine.decide(item)
        for _ in range(rounds):
            for item in mix.values():
                t = time.perf_counter_ns()
                await engine.decide(item)
                samples.append((time.perf_counter_ns() - t) / 1000)
    finally:
        await engine.close()
        double.stop()
    return samples


if __name__ == "__main__":
    main()
