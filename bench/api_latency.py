"""Added latency per API at one connection: each endpoint through the gateway vs the same stand-in directly.

    .venv/bin/python bench/api_latency.py [--requests 300]

Stand-ins and the gateway (embedded policy, in-process state, metrics and request logs on) run in this
process's threads; requests are sequential, one connection each way. Prints p50 and p99 of the direct
call, the gateway call and the difference, for chat, embeddings, responses, messages (passed through to
Anthropic and translated to an OpenAI-format provider) and Bedrock Converse.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.demo.standins import STANDIN_AWS, StandIn, StandInServers  # noqa: E402
from gateway.observe import logs  # noqa: E402
from gateway.providers import bedrock  # noqa: E402
from tests.harness import GatewayThread, settings_for  # noqa: E402

NOTE = {"role": "user", "content": "Summarise the visit in one line."}


def timed(call: Callable[[], httpx.Response], n: int) -> list[float]:
    for _ in range(20):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        reply = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, reply.text[:200]
    return samples


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] if q < 100 else max(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    n = parser.parse_args().requests
    os.environ.update(STANDIN_AWS)
    os.environ.update(
        AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null"
    )
    bedrock.reset_credentials()
    logs.configure(io.StringIO())
    standins = [
        StandIn("openai-us", "openai"),
        StandIn("azure-us-east", "azure_openai"),
        StandIn("azure-eu-west", "azure_openai"),
        StandIn("anthropic-us", "anthropic"),
    ]
    servers = StandInServers(standins).start_in_thread()
    rock = StandInServers([StandIn("anthropic-us", "bedrock")]).start_in_thread()
    try:
        with GatewayThread(settings_for(servers)) as gw:
            rows = _measure(gw.base_url, servers, n)
        with GatewayThread(settings_for(rock)) as gw:
            rows += _bedrock(gw.base_url, rock, n)
    finally:
        servers.stop_thread()
        rock.stop_thread()
    head = f"{'endpoint':<34} {'direct p50':>10} {'p99':>7} {'gateway p50':>12} {'p99':>7}"
    print(head + f" {'added p50':>10} {'added p99':>10}")
    for name, direct, via in rows:
        print(
            f"{name:<34} {p(direct, 50):>10.2f} {p(direct, 99):>7.2f} {p(via, 50):>12.2f} {p(via, 99):>7.2f}"
            f" {p(via, 50) - p(direct, 50):>10.2f} {p(via, 99) - p(direct, 99):>10.2f}"
        )
    print(f"(milliseconds, {n} sequential requests each, one connection)")


def _measure(base: str, servers: StandInServers, n: int) -> list[tuple[str, list[float], list[float]]]:
    marketing = {"Authorization": "Bearer gw-demo-marketing"}
    phi = {"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"}
    claude = {"x-api-key": "gw-demo-cardiology", "anthropic-version": "2023-06-01", "X-Use-Case": "discharge-summary"}
    openai_root = servers["openai-us"].base_url
    anthropic_root = servers["anthropic-us"].base_url
    cases = [
        (
            "chat.completions (openai)",
            "/v1/chat/completions",
            marketing,
            {"model": "gpt-4o-mini", "messages": [NOTE]},
            openai_root + "/chat/completions",
            {"model": "gpt-4o-mini", "messages": [NOTE]},
        ),
        (
            "embeddings (openai)",
            "/v1/embeddings",
            marketing,
            {"model": "text-embedding-3-small", "input": "a note"},
            openai_root + "/embeddings",
            {"model": "text-embedding-3-small", "input": "a note"},
        ),
        (
            "responses (openai)",
            "/v1/responses",
            marketing,
            {"model": "gpt-4o-mini", "input": "a note", "store": False},
            openai_root + "/responses",
            {"model": "gpt-4o-mini", "input": "a note", "store": False},
        ),
        (
            "messages (anthropic, as is)",
            "/v1/messages",
            claude,
            {"model": "claude-sonnet-4", "max_tokens": 100, "messages": [NOTE]},
            anthropic_root + "/v1/messages",
            {"model": "claude-sonnet-4", "max_tokens": 100, "messages": [NOTE]},
        ),
        (
            "messages (azure, translated)",
            "/v1/messages",
            claude,
            {"model": "gpt-4o", "max_tokens": 100, "messages": [NOTE]},
            servers["azure-us-east"].base_url
            + "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
            {"messages": [NOTE], "max_tokens": 100},
        ),
    ]
    del phi
    rows = []
    with httpx.Client(timeout=10) as client:
        for name, path, headers, body, direct_url, direct_body in cases:
            direct = timed(functools.partial(client.post, direct_url, json=direct_body), n)
            via = timed(functools.partial(client.post, base + path, json=body, headers=headers), n)
            rows.append((name, direct, via))
    return rows


def _bedrock(base: str, rock: StandInServers, n: int) -> list[tuple[str, list[float], list[float]]]:
    from gateway.chat import from_body
    from gateway.demo.standins import provider_config
    from gateway.providers.bedrock import BedrockAdapter
    from gateway.settings import from_dict

    provider = from_dict({"providers": [provider_config(rock["anthropic-us"])]}).providers[0]
    adapter = BedrockAdapter()
    chat = from_body({"model": "claude-sonnet-4", "messages": [NOTE]})
    phi = {"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"}
    with httpx.Client(timeout=10) as client:

        def direct() -> httpx.Response:
            signed = adapter.build(chat, provider, provider.models["claude-sonnet-4"], 256)
            return client.post(signed.url, content=signed.body, headers=signed.headers)

        direct_samples = timed(direct, n)
        via = timed(
            lambda: client.post(
                base + "/v1/chat/completions", json={"model": "claude-sonnet-4", "messages": [NOTE]}, headers=phi
            ),
            n,
        )
    return [("chat.completions (bedrock, signed)", direct_samples, via)]


if __name__ == "__main__":
    main()
