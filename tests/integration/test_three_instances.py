"""Three gateway processes, one real Redis, two teams sharing one provider: budgets hold across instances.

Runs for a little over two minutes (two full 60-second windows). Checks:
- per team, the tokens admitted in any 60-second window stay within the team's
  limit plus the estimate errors settled while requests were in flight;
- the provider's org budget holds across both teams;
- the tokens the gateways settled equal the tokens the providers billed,
  cancelled streams included (counted deltas; at most two tokens per cancelled
  stream differ: events the provider wrote after the gateway closed it).
The measured overshoot is printed (pytest -s) for the issue note.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from gateway.chat import from_body
from gateway.metering.tokens import TokenCounter
from gateway.policy import bundle
from gateway.standin import Behavior, StandInServers
from tests.factories import REGO
from tests.harness import GatewayProcess, RedisServer, gateway_config, standins_running

DURATION = 125.0
TEAM_LIMIT = 30_000
PROVIDER_LIMIT = 40_000
PER_TEAM_CONCURRENCY = 4
ADMIN = "three-admin"
TEAMS = {"eu-research": ("gw-demo-eu-research", "gpt-4o"), "marketing": ("gw-demo-marketing", "gpt-4o-mini")}
WORDS = [
    "patient",
    "cohort",
    "statin",
    "outcome",
    "review",
    "evidence",
    "trial",
    "dose",
    "adverse",
    "event",
    "follow",
    "up",
]


@dataclass
class Sent:
    marker: str
    team: str
    sent_at: float
    status: int
    reserved: int
    stream: bool
    cancelled: bool


def _bundle(work: Path) -> Path:
    rego = work / "rego"
    shutil.copytree(REGO, rego)
    data = rego / "gateway" / "config" / "data.json"
    config = json.loads(data.read_text())
    for team in TEAMS:
        config["teams"][team]["tokens_per_minute"] = TEAM_LIMIT
    data.write_text(json.dumps(config))
    path = work / "three.tar.gz"
    path.write_bytes(bundle.build(rego))
    return path


def _config(standins: StandInServers, redis: RedisServer, work: Path) -> dict[str, object]:
    config = gateway_config(standins, state={"redis_url": redis.url, "timeout_ms": 200})
    providers = [p for p in config["providers"] if p["name"] in ("azure-eu-west", "azure-us-east")]
    for p in providers:
        if p["name"] == "azure-eu-west":
            p["limits"] = {"tokens_per_minute": PROVIDER_LIMIT, "requests_per_minute": 100_000}
    config["providers"] = providers
    config["policy"] = {"bundle": str(_bundle(work)), "poll_seconds": 0}
    return config


def test_three_instances_share_team_and_provider_budgets(tmp_path: Path) -> None:
    with standins_running() as standins, RedisServer() as redis:
        for name in ("azure-eu-west", "azure-us-east"):
            standins[name].set_default(
                Behavior(latency=0.05, prompt_scale=1.1, chunk_delay=0.02, text="a b c d e f g h")
            )
        config = _config(standins, redis, tmp_path)
        started = []
        for i in range(3):
            (tmp_path / f"gw{i}").mkdir()
            started.append(
                GatewayProcess(config, env={"GATEWAY_ADMIN_TOKEN": ADMIN}, workdir=tmp_path / f"gw{i}").start()
            )
        try:
            sent = asyncio.run(_drive([g.base_url for g in started]))
            settled = sum(asyncio.run(_settled_tokens(g.base_url)) for g in started)
        finally:
            for g in started:
                g.stop()
        billed = {
            r.body.get("user"): (name, r.billed)
            for name in ("azure-eu-west", "azure-us-east")
            for r in standins[name].received
        }
    _check(sent, billed, settled)


async def _drive(bases: list[str]) -> list[Sent]:
    counter = TokenCounter()
    rng = random.Random(7)
    sent: list[Sent] = []
    stop_at = time.monotonic() + DURATION
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker(team: str, index: int) -> None:
            key, model = TEAMS[team]
            n = index
            while time.monotonic() < stop_at:
                n += 1
                marker = uuid.uuid4().hex
                words = rng.randint(10, 1500)
                max_tokens = rng.choice([16, 64, 256, 1000])
                stream = rng.random() < 0.15
                cancel = stream and rng.random() < 0.5
                body: dict[str, object] = {
                    "model": model,
                    "max_tokens": max_tokens,
                    "user": marker,
                    "messages": [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(words))}],
                }
                if stream:
                    body["stream"] = True
                reserved = counter.prompt_tokens(from_body(body), model) + max_tokens
                base = bases[n % len(bases)]
                sent_at = time.time()
                async with session.post(
                    f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                ) as resp:
                    if cancel and resp.status == 200:
                        await resp.content.readline()
                        resp.close()  # the client walks away mid-stream
                    else:
                        await resp.read()
                    sent.append(
                        Sent(marker, team, sent_at, resp.status, reserved, stream, cancel and resp.status == 200)
                    )
                if resp.status != 200:  # honour Retry-After like a well-behaved client, jittered, capped for the test
                    await asyncio.sleep(min(2.0, float(resp.headers.get("Retry-After", "1"))) * rng.uniform(0.5, 1.0))

        await asyncio.gather(*(worker(team, i) for team in TEAMS for i in range(PER_TEAM_CONCURRENCY)))
        await asyncio.sleep(1.0)  # let cancelled streams settle
    return sent


async def _settled_tokens(base: str) -> float:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics", headers=headers) as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("gateway_tokens_total{"))


def _windows(items: list[tuple[float, int]], start: float, end: float) -> list[float]:
    totals: list[float] = []
    w = start
    while w + 60 <= end:
        totals.append(sum(tokens for at, tokens in items if w <= at < w + 60))
        w += 1.0
    return totals


def _check(sent: list[Sent], billed: dict[object, tuple[str, int]], settled: float) -> None:
    ok = [s for s in sent if s.status == 200]
    assert len(ok) > 100 and any(s.status == 429 for s in sent), "the load must hit the limits"
    assert all(s.status in (200, 429, 503) for s in sent), {s.status for s in sent}
    start, end = min(s.sent_at for s in sent), max(s.sent_at for s in sent)
    report = []
    for team in TEAMS:
        items = [(s.sent_at, billed[s.marker][1]) for s in ok if s.team == team]
        errors = sorted((billed[s.marker][1] - s.reserved for s in ok if s.team == team), reverse=True)
        worst = max(_windows(items, start, end))
        allowance = sum(e for e in errors[:PER_TEAM_CONCURRENCY] if e > 0)
        report.append(
            f"{team}: max tokens in a 60 s window {worst} (limit {TEAM_LIMIT}, overshoot {worst - TEAM_LIMIT}, "
            f"largest single estimate error {max(errors[0], 0)})"
        )
        assert worst <= TEAM_LIMIT + allowance, report[-1]
    provider_items = [(s.sent_at, billed[s.marker][1]) for s in ok if billed[s.marker][0] == "azure-eu-west"]
    provider_errors = sorted(
        (billed[s.marker][1] - s.reserved for s in ok if billed[s.marker][0] == "azure-eu-west"), reverse=True
    )
    worst_provider = max(_windows(provider_items, start, end))
    report.append(f"azure-eu-west: max tokens in a 60 s window {worst_provider} (org limit {PROVIDER_LIMIT})")
    assert worst_provider <= PROVIDER_LIMIT + sum(e for e in provider_errors[: 2 * PER_TEAM_CONCURRENCY] if e > 0), (
        report[-1]
    )
    total_billed = sum(tokens for _, tokens in billed.values())
    cancelled = sum(1 for s in ok if s.cancelled)
    report.append(
        f"settled {settled:.0f} tokens, providers billed {total_billed}, {cancelled} cancelled streams, "
        f"{len(ok)} of {len(sent)} requests admitted"
    )
    print("\n".join(report))
    # a provider may write an event or two after the gateway has closed a cancelled stream: billed, never received
    assert abs(settled - total_billed) <= 2 * cancelled, report[-1]
