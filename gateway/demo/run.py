"""`gateway demo`: the gateway on embedded defaults against local stand-in providers.

Starts four stand-in providers and the gateway on 127.0.0.1, sends a scripted
mix of traffic (allowed, PHI-denied, residency-routed, JWT, content-logged,
token-limited, a provider outage with failover), prints what happened and the
cost attribution from the gateway's own metrics, and exits 0. No network, no
configuration, well under a minute.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn

from gateway.app import build_app
from gateway.demo.auth import DEMO_AUDIENCE, DEMO_ISSUER, mint_demo_jwt, sign_demo_jwt
from gateway.demo.standins import Behavior, StandInServers, demo_standins, provider_config
from gateway.ledger import open_store
from gateway.ledger.verify import verify
from gateway.observe import logs
from gateway.policy import bundle
from gateway.settings import Settings, from_dict

REPO = Path(__file__).resolve().parents[2]
PRICES = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "claude-sonnet-4": {"input": 3.00, "output": 15.00},
    "text-embedding-3-small": {"input": 0.02, "output": 0.0},
}
NOTE = "Patient J.D., 67, admitted with NSTEMI; summarise for discharge."


@dataclass
class Shot:
    label: str
    key: str
    model: str
    headers: dict[str, str]
    stream: bool = False
    max_tokens: int | None = 256
    content: str = NOTE


def _bundle_path(workdir: Path) -> str:
    shipped = REPO / "bundles" / "gateway.tar.gz"
    if shipped.exists():
        return str(shipped)
    built = workdir / "gateway.tar.gz"
    built.write_bytes(bundle.build(REPO / "rego"))
    return str(built)


def _config(servers: StandInServers, bundle_path: str, decision_log: Path) -> dict[str, Any]:
    providers = [provider_config(s, timeout_seconds=5.0) for s in servers.standins.values()]
    return {
        "policy": {
            "bundle": bundle_path,
            "poll_seconds": 0,
            "decision_logs": {"sink": "file", "path": str(decision_log), "flush_seconds": 0.2},
        },
        "providers": providers,
        "prices": PRICES,
        "breaker": {"min_requests": 3, "failure_ratio": 0.5, "window_seconds": 30, "open_seconds": 30},
        "admin": {"token_env": "GATEWAY_DEMO_ADMIN_TOKEN"},
        "ledger": {
            "path": str(decision_log.with_name("ledger.db")),
            "spill_path": str(decision_log.with_name("ledger.spill")),
            "signing_key_env": "GATEWAY_DEMO_LEDGER_KEY",
            "checkpoint_every": 25,
        },
        "prices_version": "demo-2026-11",
    }


async def _send(session: aiohttp.ClientSession, base: str, shot: Shot) -> dict[str, Any]:
    body: dict[str, Any] = {"model": shot.model, "messages": [{"role": "user", "content": shot.content}]}
    if shot.max_tokens:
        body["max_tokens"] = shot.max_tokens
    if shot.stream:
        body.update(stream=True, stream_options={"include_usage": True})
    headers = {"Authorization": f"Bearer {shot.key}", **shot.headers}
    async with session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as resp:
        raw = await resp.read()
        outcome: dict[str, Any] = {
            "label": shot.label,
            "status": resp.status,
            "provider": resp.headers.get("X-Gateway-Provider", "-"),
            "model": resp.headers.get("X-Gateway-Model", "-"),
            "retry_after": resp.headers.get("Retry-After"),
            "tokens": "-",
            "decision": "allow" if resp.status < 400 else "-",
        }
        if resp.status >= 400:
            error = json.loads(raw).get("error", {})
            outcome["decision"] = error.get("code", "?")
            outcome["detail"] = error.get("message", "")[:70]
        elif shot.stream:
            usage = None
            for line in raw.decode().splitlines():
                if line.startswith("data: {") and '"usage"' in line:
                    usage = json.loads(line[6:]).get("usage") or usage
            outcome["tokens"] = f"{usage['prompt_tokens']}+{usage['completion_tokens']}" if usage else "?"
        else:
            usage = json.loads(raw)["usage"]
            outcome["tokens"] = f"{usage['prompt_tokens']}+{usage['completion_tokens']}"
        return outcome


def _print_row(o: dict[str, Any]) -> None:
    route = f"{o['provider']}/{o['model']}" if o["provider"] != "-" else "-"
    extra = f"  Retry-After {o['retry_after']}s" if o.get("retry_after") else ""
    detail = f"  ({o['detail']})" if o.get("detail") and o["status"] >= 400 else ""
    print(f"  {o['label']:<44} {o['status']:>3}  {o['decision']:<22} {route:<40} {o['tokens']:>9}{extra}{detail}")


def _cost_table(metrics_text: str) -> list[tuple[str, str, str, float, float, float]]:
    costs: dict[tuple[str, str, str], float] = {}
    tokens: dict[tuple[str, str, str, str], float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("gateway_cost_usd_total{") or line.startswith("gateway_tokens_total{"):
            name, _, rest = line.partition("{")
            labels_text, _, value = rest.rpartition("} ")
            labels = dict(part.split("=", 1) for part in labels_text.split(","))
            labels = {k: v.strip('"') for k, v in labels.items()}
            if name == "gateway_cost_usd_total":
                costs[(labels["team"], labels["provider"], labels["model"])] = float(value)
            else:
                tokens[(labels["team"], labels["provider"], labels["model"], labels["direction"])] = float(value)
    rows = []
    for (team, provider, model), cost in sorted(costs.items()):
        rows.append(
            (
                team,
                provider,
                model,
                tokens.get((team, provider, model, "prompt"), 0),
                tokens.get((team, provider, model, "completion"), 0),
                cost,
            )
        )
    return rows


async def run_demo(*, echo_logs: bool = True) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    log_path = workdir / "gateway.log"
    log_stream = io.StringIO()
    logs.configure(log_stream)
    admin = secrets.token_urlsafe(16)
    os.environ["GATEWAY_DEMO_ADMIN_TOKEN"] = admin
    os.environ["GATEWAY_DEMO_LEDGER_KEY"] = secrets.token_urlsafe(24)
    servers = StandInServers(demo_standins())
    await servers.start()
    decision_log = workdir / "decisions.jsonl"
    settings = from_dict(_config(servers, _bundle_path(workdir), decision_log))
    app = build_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only this flag
        await asyncio.sleep(0.01)
    revision = app.state.components.policy.revision
    print(f"Gateway on {base} (policy revision {revision}), 4 stand-in providers on 127.0.0.1\n")
    print(f"  {'request':<44} {'st':>3}  {'decision':<22} {'route (provider/model)':<40} {'tokens':>9}")
    try:
        async with aiohttp.ClientSession() as session:
            phases = await _phases(session, base, servers)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as session:
            async with session.get(f"{base}/metrics") as resp:
                metrics_text = await resp.text()
            async with session.get(f"{base}/admin/status") as resp:
                status = await resp.json()
            async with session.get(f"{base}/admin/usage?group_by=team,endpoint") as resp:
                usage = await resp.json()
    finally:
        server.should_exit = True
        await serving
        sock.close()
        await servers.stop()
    log_path.write_text(log_stream.getvalue())
    _report(phases, metrics_text, status, log_path, echo_logs)
    _report_decisions(decision_log, echo_logs)
    await _report_ledger(settings, usage)
    print(f"\nDone in {time.monotonic() - started:.1f}s.")
    return 0


async def _report_ledger(settings: Settings, usage: dict[str, Any]) -> None:
    """The durable ledger: sums per team and endpoint (from /admin/usage), then the hash chain verified."""
    print(f"\nUsage ledger (from /admin/usage, {settings.ledger.path}): exact, one row per attempt or refusal")
    print(f"  {'team':<16} {'endpoint':<18} {'rows':>5} {'prompt':>8} {'completion':>10} {'cost USD':>14}")
    for g in usage["groups"]:
        team = g["team"] or "(unauthenticated)"
        print(
            f"  {team:<16} {g['endpoint']:<18} {g['rows']:>5} {g['prompt_tokens']:>8} "
            f"{g['completion_tokens']:>10} {g['cost_usd']:>14}"
        )
    print(f"  {'total':<16} {'':<18} {usage['total']['rows']:>5} {'':>8} {'':>10} {usage['total']['cost_usd']:>14}")
    store = open_store(settings)
    assert store is not None
    try:
        report = await verify(store, settings.ledger.signing_key())
    finally:
        await store.close()
    verdict = "intact" if report.problem is None else f"NOT intact: {report.problem}"
    print(f"  gateway usage verify: {verdict} ({report.rows} rows, {report.checkpoints} signed checkpoints)")


def _no_exp_claims() -> dict[str, Any]:
    return {"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "team": "radiology-apps", "iat": int(time.time())}


async def _api_tour(session: aiohttp.ClientSession, base: str) -> None:
    """Every model API an app uses goes through the same gate: embeddings, Responses (and a follow-up,
    pinned to the provider holding the first response), Anthropic Messages (passed through, or translated
    for an OpenAI-format provider)."""
    print("\n  Every API through the same policy (the openai and anthropic SDKs' wire formats):")
    phi = {"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"}
    marketing = {"Authorization": "Bearer gw-demo-marketing"}
    anthropic = {
        "x-api-key": "gw-demo-cardiology",
        "anthropic-version": "2023-06-01",
        "X-Use-Case": "discharge-summary",
    }
    message = {"max_tokens": 200, "messages": [{"role": "user", "content": NOTE}]}
    calls: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
        (
            "embeddings: cardiology note (PHI)",
            "/v1/embeddings",
            phi,
            {"model": "text-embedding-3-small", "input": NOTE},
        ),
        ("responses: marketing tagline", "/v1/responses", marketing, {"model": "gpt-4o-mini", "input": "A tagline."}),
        ("messages: cardiology -> claude (as is)", "/v1/messages", anthropic, {"model": "claude-sonnet-4", **message}),
        ("messages: cardiology -> gpt-4o (translated)", "/v1/messages", anthropic, {"model": "gpt-4o", **message}),
    ]
    first_response = ""
    for label, path, headers, body in calls:
        async with session.post(base + path, json=body, headers=headers) as resp:
            answer = await resp.json()
            route = f"{resp.headers.get('X-Gateway-Provider', '-')}/{resp.headers.get('X-Gateway-Model', '-')}"
            print(f"  {label:<44} {resp.status:>3}  {route}")
            if path == "/v1/responses":
                first_response = answer.get("id", "")
    follow = {"model": "gpt-4o-mini", "input": "Shorter.", "previous_response_id": first_response}
    async with session.post(base + "/v1/responses", json=follow, headers=marketing) as resp:
        label = "responses: follow-up (same provider only)"
        print(f"  {label:<44} {resp.status:>3}  {resp.headers.get('X-Gateway-Provider')}")
    other = {"Authorization": "Bearer gw-demo-eu-research"}
    async with session.get(f"{base}/v1/responses/{first_response}", headers=other) as resp:
        print(f"  {'responses: another team reads it':<44} {resp.status:>3}  (not found: only its team may)")
    print("\n  Content signals (the policy sees counts per type, never the text):")
    pasted = "Draft copy for Jane, SSN 512-44-7391, MRN: 4417392."
    tries = [
        ("marketing pastes an SSN and an MRN", marketing, "gpt-4o-mini", {}),
        ("eu-research: the same, redacted", other, "gpt-4o", {}),
        (
            "cardiology 'none' + an MRN: stays PHI",
            {"Authorization": "Bearer gw-demo-cardiology"},
            "gpt-4o",
            {"X-Use-Case": "patient-education", "X-Data-Classification": "none"},
        ),
    ]
    for label, auth, model, extra in tries:
        body = {"model": model, "messages": [{"role": "user", "content": pasted}]}
        async with session.post(base + "/v1/chat/completions", json=body, headers={**auth, **extra}) as resp:
            answer = await resp.json()
            shown = answer["error"]["message"][:60] if resp.status >= 400 else resp.headers.get("X-Gateway-Provider")
            print(f"  {label:<44} {resp.status:>3}  {shown}")
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Summarise three abstracts."}]}
    async with session.post(base + "/v1/chat/completions", json=chat, headers=other) as resp:
        cost, left = resp.headers.get("X-Gateway-Cost-Usd"), resp.headers.get("X-RateLimit-Remaining-Usd")
        label = "eu-research: dollar budget ($25 a day)"
        print(f"  {label:<44} {resp.status:>3}  cost {cost} USD, {left} USD left today")


async def _phases(session: aiohttp.ClientSession, base: str, servers: StandInServers) -> dict[str, Any]:
    jwt = mint_demo_jwt("radiology-apps")
    shots = [
        Shot(
            "cardiology: discharge summary (PHI)", "gw-demo-cardiology", "gpt-4o", {"X-Use-Case": "discharge-summary"}
        ),
        Shot(
            "cardiology: same, streamed",
            "gw-demo-cardiology",
            "gpt-4o",
            {"X-Use-Case": "discharge-summary"},
            stream=True,
        ),
        Shot("eu-research: literature review (EU only)", "gw-demo-eu-research", "gpt-4o", {}),
        Shot("eu-research: sends PHI", "gw-demo-eu-research", "gpt-4o", {"X-Data-Classification": "phi"}),
        Shot("eu-research: asks for a model not granted", "gw-demo-eu-research", "claude-sonnet-4", {}),
        Shot(
            "marketing: web copy (content logged)",
            "gw-demo-marketing",
            "gpt-4o-mini",
            {},
            content="Write a tagline for our new clinic.",
        ),
        Shot("radiology-apps: JWT, Anthropic upstream", jwt, "claude-sonnet-4", {}, stream=True),
        Shot("radiology-apps: a JWT that never expires", sign_demo_jwt(_no_exp_claims()), "gpt-4o", {}),
        Shot("no credential", "not-a-real-key", "gpt-4o", {}),
        Shot("cardiology: max_tokens over the team cap", "gw-demo-cardiology", "gpt-4o", {}, max_tokens=8000),
        Shot(
            "cardiology: declares its PHI 'none'",
            "gw-demo-cardiology",
            "gpt-4o",
            {"X-Use-Case": "discharge-summary", "X-Data-Classification": "none"},
        ),
        Shot(
            "cardiology: patient education, declassified",
            "gw-demo-cardiology",
            "gpt-4o",
            {"X-Use-Case": "patient-education", "X-Data-Classification": "none"},
            content="Explain what a statin does, for a leaflet.",
        ),
    ]
    results = [await _send(session, base, shot) for shot in shots]
    for outcome in results:
        _print_row(outcome)
    await _api_tour(session, base)

    print("\n  Token budget: marketing (20,000 tokens/min) fires 24 concurrent requests of max_tokens=1024")
    servers["openai-us"].set_default(Behavior(latency=0.4))
    burst = [
        Shot(f"marketing burst #{i + 1}", "gw-demo-marketing", "gpt-4o-mini", {}, max_tokens=1024, content="Tagline?")
        for i in range(24)
    ]
    burst_results = await asyncio.gather(*(_send(session, base, s) for s in burst))
    servers["openai-us"].set_default(Behavior())
    admitted = [r for r in burst_results if r["status"] == 200]
    limited = [r for r in burst_results if r["status"] == 429]
    print(f"  {len(admitted)} admitted, {len(limited)} refused with 429 rate_limited", end="")
    print(f" (Retry-After {limited[0]['retry_after']}s)" if limited else "")

    print("\n  Provider boundary: azure-us-east answers 307 to openai-us (no BAA); the gateway never follows it")
    servers["azure-us-east"].script(Behavior(redirect_to=servers["openai-us"].base_url + "/chat/completions"))
    before = servers["openai-us"].count
    redirected = await _send(
        session, base, Shot("cardiology: PHI, first route redirects", "gw-demo-cardiology", "gpt-4o", {})
    )
    _print_row(redirected)
    print(f"  PHI requests that reached openai-us: {servers['openai-us'].count - before}")

    print("\n  Strict JSON: NaN is not JSON; such a body is refused before any provider sees it")
    sent = sum(s.count for s in servers.standins.values())
    nan_body = b'{"model":"gpt-4o","temperature":NaN,"messages":[{"role":"user","content":"hi"}]}'
    headers = {"Authorization": "Bearer gw-demo-eu-research", "Content-Type": "application/json"}
    async with session.post(base + "/v1/chat/completions", data=nan_body, headers=headers) as resp:
        reached = sum(s.count for s in servers.standins.values()) - sent
        print(f"  {'eu-research: temperature NaN':<44} {resp.status:>3}  providers reached: {reached}")

    print(
        "\n  Outage: azure-us-east starts answering 500; cardiology keeps working through the policy's equivalent route"
    )
    servers["azure-us-east"].set_default(Behavior(status=500))
    outage = [
        await _send(
            session,
            base,
            Shot(
                f"cardiology during outage #{i + 1}",
                "gw-demo-cardiology",
                "gpt-4o",
                {"X-Use-Case": "discharge-summary"},
            ),
        )
        for i in range(5)
    ]
    for outcome in outage:
        _print_row(outcome)
    servers["azure-us-east"].set_default(Behavior())
    return {"shots": results, "burst": burst_results, "outage": outage}


def _report(phases: dict[str, Any], metrics_text: str, status: dict[str, Any], log_path: Path, echo_logs: bool) -> None:
    print("\n  Breakers after the outage (from /admin/status):")
    for name, info in status["breakers"].items():
        print(f"    {name:<16} {info['state']:<10} trips={info['trips']}")
    cache = (status.get("policy") or {}).get("decision_cache")
    if cache:
        print(
            f"  Decision cache (exact; JWT answers read the clock, never cached): {cache['hits']} hits, "
            f"{cache['misses']} misses, {cache['refused']} refused, {cache['entries']} entries"
        )
    print("\nCost attribution (from /metrics: gateway_tokens_total and gateway_cost_usd_total):")
    print(f"  {'team':<16} {'provider':<16} {'model':<18} {'prompt':>8} {'completion':>10} {'cost USD':>12}")
    total = 0.0
    for team, provider, model, prompt, completion, cost in _cost_table(metrics_text):
        total += cost
        print(f"  {team:<16} {provider:<16} {model:<18} {prompt:>8.0f} {completion:>10.0f} {cost:>12.6f}")
    print(f"  {'total':<16} {'':<16} {'':<18} {'':>8} {'':>10} {total:>12.6f}")
    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines if '"request_id"' in line]
    print(f"\nLogs: {len(records)} request records ({len(lines)} lines) in {log_path}")
    if echo_logs and records:
        phi = next((r for r in records if r.get("team") == "cardiology" and r.get("status") == 200), None)
        content = next((r for r in records if r.get("log_level") == "content"), None)
        if phi:
            print("  a PHI request's record (metadata only):")
            print("   ", json.dumps(phi))
        if content:
            print("  a content-logging team's record (messages and completion included, as its policy allows):")
            print("   ", json.dumps(content))
    leaked = NOTE in log_path.read_text()
    print(f"  the PHI note text appears in the logs: {'YES (bug!)' if leaked else 'no'}")


def _report_decisions(path: Path, echo: bool) -> None:
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    print(f"\nDecision log: {len(events)} events in OPA's format in {path}")
    masked = next((e for e in events if e.get("masked") or e.get("erased")), None)
    if echo and masked:
        print("  one event, after the bundle's data.system.log.mask (input shown; result trimmed):")
        shown = {
            k: masked[k]
            for k in ("decision_id", "bundles", "path", "input", "erased", "masked", "timestamp")
            if k in masked
        }
        shown["result"] = {k: masked.get("result", {}).get(k) for k in ("allow", "team", "use_case", "log_level")}
        print("   ", json.dumps(shown))
