from __future__ import annotations

import typing
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.providers.registry import KINDS
from gateway.settings import ProviderKind, from_dict, load

PROVIDER = {"name": "p", "kind": "openai", "base_url": "https://x/v1", "models": {"gpt-4o": "gpt-4o"}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"listne": {}}, "unknown config key listne"),
        ({"listen": {"prot": 1}}, "unknown config key listen.prot"),
        ({"listen": {"port": "80"}}, "config key listen.port must be an integer"),
        ({"providers": [{"name": "p"}]}, "missing config key providers[0].kind"),
        ({"providers": [{**PROVIDER, "kind": "gcp"}]}, "providers[0].kind must be one of"),
        ({"providers": [{**PROVIDER, "base_url": "ftp://x"}]}, "base_url must be an http"),
        ({"providers": [PROVIDER, PROVIDER]}, "listed twice"),
        ({"providers": [PROVIDER]}, "model gpt-4o is served but has no price"),
        ({"providers": [{**PROVIDER, "kind": "bedrock", "base_url": None}]}, "must name an AWS region"),
        ({"providers": [{**PROVIDER, "endpoints": {"gpt-4o": ["images"]}}]}, "endpoints.gpt-4o"),
        ({"prices": {"gpt-4o": {"input": -1, "output": 1}}}, "must not be negative"),
        ({"ledger": {"store": "mysql"}}, "ledger.store must be one of"),
        ({"state": {"workers": 3}}, "needs state.redis_url"),
        ({"policy": {"engine": "cedar"}}, "policy.engine must be one of"),
        ({"prices": {"gpt-4o": {"input": "cheap", "output": 1}}}, "prices.gpt-4o.input must be a number"),
        ({"listen": {"gc_threshold": -1}}, "listen.gc_threshold must be 0"),
        ({"policy": {"decision_cache_entries": -5}}, "policy.decision_cache_entries must be 0"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    assert message in str(info.value)


def test_env_overrides_nested_and_list_items(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "providers:\n  - name: p\n    kind: openai\n    base_url: https://x/v1\n    models: {gpt-4o: gpt-4o}\n"
        "prices: {gpt-4o: {input: 2.5, output: 10}}\n"
    )
    env = {
        "GATEWAY_LISTEN__PORT": "9100",
        "GATEWAY_PROVIDERS__0__TIMEOUT_SECONDS": "3",
        "GATEWAY_STATE__REDIS_URL": "redis://127.0.0.1:1/0",
    }
    settings = load(str(path), env)
    assert settings.listen.port == 9100
    assert settings.providers[0].timeout_seconds == 3.0
    assert settings.state.redis_url == "redis://127.0.0.1:1/0"


def test_env_override_of_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key listen\.portt"):
        load(None, {"GATEWAY_LISTEN__PORTT": "1"})


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load(str(tmp_path / "none.yaml"), {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(str(bad), {})


def test_every_provider_kind_has_an_adapter_and_no_adapter_lacks_a_kind() -> None:
    assert set(typing.get_args(ProviderKind)) == set(KINDS)
