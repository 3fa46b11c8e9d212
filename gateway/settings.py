"""Configuration: one YAML file (`--config` or GATEWAY_CONFIG), every key overridable by env.

Env overrides use the GATEWAY_ prefix and `__` for nesting, list items by
index: GATEWAY_LISTEN__PORT=9000, GATEWAY_STATE__REDIS_URL=redis://...,
GATEWAY_PROVIDERS__0__BASE_URL=.... Values are parsed as YAML scalars.
Secrets are never in the file: only the names of env vars that hold them.
Unknown keys are an error naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from gateway.errors import ConfigError

ProviderKind = Literal["openai", "azure_openai", "anthropic", "bedrock"]
ENDPOINTS = ("chat.completions", "embeddings", "responses", "messages")
# default names of env vars that hold secrets or the config's path, never config overrides
SECRET_ENV_NAMES = frozenset({"GATEWAY_CONFIG", "GATEWAY_ADMIN_TOKEN", "GATEWAY_LEDGER_DSN"})
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


@dataclass(frozen=True)
class Listen:
    """The front door's limits: what an unknown client can make the gateway hold, and for how long."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout_seconds: float = 30.0  # the whole body must arrive within this (408 otherwise)
    max_header_bytes: int = 32 * 1024  # request line + headers (431 otherwise)
    max_headers: int = 100
    header_timeout_seconds: float = 10.0  # headers must be complete within this (408 otherwise)
    max_unverified_body_reads: int = 64  # bodies read at once for credentials the policy has yet to verify
    workers: int = 1  # processes on one port (SO_REUSEPORT); more than one needs state.redis_url
    gc_threshold: int = 20_000  # serve: collect the youngest generation every N allocations (Python: 700); 0 off


@dataclass(frozen=True)
class DecisionLogSettings:
    """Where decision log events go. In OPA mode OPA's own decision logger usually does this (sink: none)."""

    sink: Literal["none", "console", "file", "http"] = "none"
    path: str = "decision-log.jsonl"  # file sink
    url: str | None = None  # http sink: OPA's decision log service API (gzipped JSON array per POST)
    token_env: str | None = None  # http sink: env var holding a bearer token
    max_buffer: int = (
        10_000  # events held while the sink is slow or down; beyond it, new events are dropped and counted
    )
    batch_size: int = 500
    flush_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class PolicySettings:
    engine: Literal["embedded", "opa"] = "embedded"
    bundle: str = "bundles/gateway.tar.gz"
    poll_seconds: float = 30.0
    verification_key: str | None = None
    opa_url: str = "http://127.0.0.1:8181"
    opa_token_env: str | None = None  # env var holding a bearer token for the OPA server
    timeout_ms: int = 100
    decision_cache_entries: int = 10_000  # embedded engine: exact answers kept per bundle; 0 turns the cache off
    decision_logs: DecisionLogSettings = field(default_factory=DecisionLogSettings)


@dataclass(frozen=True)
class StateSettings:
    redis_url: str | None = None
    timeout_ms: int = 50
    workers: int = 1
    # Instances assumed to share the budgets when Redis is unreachable before any heartbeat was seen:
    # each takes limit / expected_instances until the real count is known (never the whole limit).
    expected_instances: int = 2


@dataclass(frozen=True)
class ProviderLimits:
    tokens_per_minute: int = 2_000_000
    requests_per_minute: int = 10_000


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    kind: ProviderKind
    models: dict[str, str]
    base_url: str | None = None  # required, except for bedrock (default: the region's bedrock-runtime endpoint)
    region: str | None = None  # bedrock: the AWS region (required)
    api_key_env: str | None = None
    api_version: str = "2024-10-21"
    limits: ProviderLimits = field(default_factory=ProviderLimits)
    timeout_seconds: float = 60.0  # to the status line (streams) or the whole answer (non-stream)
    connect_timeout_seconds: float = 5.0
    first_content_timeout_seconds: float | None = None  # streams: to the first content; None = timeout_seconds
    stream_timeout_seconds: float = 600.0  # streams: the whole stream, keep-alives or not
    max_answer_bytes: int = 32 * 1024 * 1024  # a non-stream answer over this is a failed attempt
    # gateway model -> the endpoints it serves here (chat.completions, embeddings, responses, messages);
    # unlisted: all its kind can serve, embeddings only for models whose name says "embed"
    endpoints: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where requests go: base_url, or for Bedrock the region's runtime endpoint."""
        if self.base_url:
            return self.base_url
        return f"https://bedrock-runtime.{self.region}.amazonaws.com" if self.kind == "bedrock" else ""

    @property
    def first_content_timeout(self) -> float:
        return self.first_content_timeout_seconds or self.timeout_seconds

    def api_key(self) -> str:
        if not self.api_key_env:
            return ""
        return os.environ.get(self.api_key_env, "")


@dataclass(frozen=True)
class BreakerSettings:
    failure_ratio: float = 0.5
    min_requests: int = 10
    window_seconds: float = 30.0
    open_seconds: float = 30.0
    half_open_probes: int = 1
    max_open_seconds: float = 300.0


@dataclass(frozen=True)
class QueueSettings:
    max_wait_seconds: float = 20.0
    max_depth: int = 1000
    max_attempts: int = 4
    max_retries_per_route: int = 1  # 429 retries of one route within one request, then the next route


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Cached prompt tokens cost cache_read (default: input), tokens written to a
    prompt cache cost cache_write (default: input)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class TelemetrySettings:
    otlp_endpoint: str | None = None  # OTLP/HTTP collector (e.g. http://127.0.0.1:4318); null: no traces


@dataclass(frozen=True)
class BudgetSettings:
    """Dollar budgets (the decision's usd_per_day / usd_per_month): calendar windows in this time zone."""

    time_zone: str = "UTC"


@dataclass(frozen=True)
class LedgerSettings:
    """The usage ledger: one row per attempt at a provider and per refused request (gateway/ledger/)."""

    store: Literal["sqlite", "postgres", "none"] = "sqlite"
    path: str = "gateway-ledger.db"  # sqlite
    dsn_env: str = "GATEWAY_LEDGER_DSN"  # postgres: env var holding the DSN (it may carry a password)
    signing_key_env: str | None = None  # env var holding the checkpoints' HMAC key
    spill_path: str = "gateway-ledger.spill"  # rows wait here while the store is unreachable
    batch_size: int = 200
    flush_seconds: float = 0.5
    max_buffer: int = 10_000
    checkpoint_every: int = 100  # rows between signed checkpoints

    def dsn(self) -> str:
        return os.environ.get(self.dsn_env, "")

    def signing_key(self) -> bytes | None:
        value = os.environ.get(self.signing_key_env) if self.signing_key_env else None
        return value.encode() if value else None


@dataclass(frozen=True)
class AdminSettings:
    token_env: str | None = "GATEWAY_ADMIN_TOKEN"  # noqa: S105 - the name of an env var, not a secret

    def token(self) -> str | None:
        if not self.token_env:
            return None
        return os.environ.get(self.token_env) or None


@dataclass(frozen=True)
class Settings:
    listen: Listen = field(default_factory=Listen)
    policy: PolicySettings = field(default_factory=PolicySettings)
    state: StateSettings = field(default_factory=StateSettings)
    providers: list[ProviderSettings] = field(default_factory=list)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    prices: dict[str, Price] = field(default_factory=dict)
    prices_version: str = "unversioned"  # carried by every ledger row: which price table priced it
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def provider(self, name: str) -> ProviderSettings | None:
        return next((p for p in self.providers if p.name == name), None)


def load(path: str | None = None, env: typing.Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    path = path or env.get("GATEWAY_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of settings")
        raw = loaded or {}
    _apply_env(raw, env)
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Settings:
    settings: Settings = _build(Settings, raw, "")
    _validate(settings)
    return settings


def _apply_env(raw: dict[str, Any], env: typing.Mapping[str, str]) -> None:
    for name, value in sorted(env.items()):
        if not name.startswith("GATEWAY_") or name in SECRET_ENV_NAMES:
            continue
        keys = [k.lower() for k in name[len("GATEWAY_") :].split("__")]
        node: Any = raw
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"{name}: no list item {key}")
                if last:
                    node[int(key)] = yaml.safe_load(value)
                else:
                    node = node[int(key)]
            elif last:
                node[key] = yaml.safe_load(value)
            else:
                node = node.setdefault(key, {})


def _build(cls: type[Any], raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {_join(where, unknown[0])}")
    values = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name in raw:
            values[name] = _convert(hints[name], raw[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing config key {key}")
    return cls(**values)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _convert(inner[0], value, key)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"config key {key} must be one of {', '.join(map(str, get_args(tp)))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key} must be a list")
        return [_convert(get_args(tp)[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} must be a mapping")
        return {str(k): _convert(get_args(tp)[1], v, _join(key, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type[Any], tp), value, key)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"config key {key} must be {_TYPE_NAMES.get(tp, str(tp))}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _validate(settings: Settings) -> None:
    names = [p.name for p in settings.providers]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"provider name {sorted(duplicates)[0]} is listed twice")
    for i, p in enumerate(settings.providers):
        if p.kind == "bedrock" and not (p.region and REGION.match(p.region)):
            raise ConfigError(f"config key providers[{i}].region must name an AWS region (us-east-1) for bedrock")
        if not p.url.startswith(("http://", "https://")):
            raise ConfigError(f"config key providers[{i}].base_url must be an http(s) URL")
        if not p.models:
            raise ConfigError(f"config key providers[{i}].models must map at least one model")
        if p.timeout_seconds <= 0 or p.limits.tokens_per_minute <= 0:
            raise ConfigError(f"config key providers[{i}] needs positive timeout_seconds and limits")
        if p.stream_timeout_seconds <= 0 or (p.first_content_timeout_seconds or 1) <= 0:
            raise ConfigError(f"config key providers[{i}] needs positive stream timeouts")
        for model, served in p.endpoints.items():
            if model not in p.models or not set(served) <= set(ENDPOINTS):
                raise ConfigError(
                    f"config key providers[{i}].endpoints.{model}: a model of this provider, "
                    f"served on some of {', '.join(ENDPOINTS)}"
                )
        if p.max_answer_bytes < 1024:
            raise ConfigError(f"config key providers[{i}].max_answer_bytes must be at least 1024")
    unpriced = sorted({m for p in settings.providers for m in p.models} - set(settings.prices))
    if unpriced:
        raise ConfigError(
            f"model {unpriced[0]} is served but has no price: add it under prices (USD per million tokens)"
        )
    for model, price in settings.prices.items():
        values = [price.input, price.output, price.cache_read or 0, price.cache_write or 0]
        if any(v < 0 for v in values):
            raise ConfigError(f"config key prices.{model}: prices must not be negative")
    try:
        ZoneInfo(settings.budgets.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config key budgets.time_zone: {settings.budgets.time_zone!r} is not a time zone") from None
    if settings.ledger.batch_size < 1 or settings.ledger.max_buffer < 1 or settings.ledger.checkpoint_every < 1:
        raise ConfigError("config key ledger needs batch_size, max_buffer and checkpoint_every >= 1")
    endpoint = settings.telemetry.otlp_endpoint
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError("config key telemetry.otlp_endpoint must be an http(s) URL")
    if settings.listen.workers < 1:
        raise ConfigError("config key listen.workers must be at least 1")
    if max(settings.state.workers, settings.listen.workers) > 1 and not settings.state.redis_url:
        raise ConfigError(
            "listen.workers > 1 needs state.redis_url: budgets and breakers must be shared between processes"
        )
    logs = settings.policy.decision_logs
    if logs.sink == "http" and not (logs.url or "").startswith(("http://", "https://")):
        raise ConfigError("config key policy.decision_logs.url must be an http(s) URL for the http sink")
    if not settings.policy.opa_url.startswith(("http://", "https://")):
        raise ConfigError("config key policy.opa_url must be an http(s) URL")
    if settings.policy.timeout_ms < 1:
        raise ConfigError("config key policy.timeout_ms must be at least 1")
    if settings.policy.decision_cache_entries < 0:
        raise ConfigError("config key policy.decision_cache_entries must be 0 (off) or more")
    if settings.state.expected_instances < 1 or settings.queue.max_retries_per_route < 0:
        raise ConfigError("config keys state.expected_instances >= 1 and queue.max_retries_per_route >= 0")
    listen = settings.listen
    if listen.gc_threshold < 0:
        raise ConfigError("config key listen.gc_threshold must be 0 (Python's default) or more")
    if listen.max_body_bytes < 1024:
        raise ConfigError("config key listen.max_body_bytes must be at least 1024")
    if listen.max_header_bytes < 1024 or listen.max_headers < 8 or listen.max_unverified_body_reads < 1:
        raise ConfigError(
            "config key listen needs max_header_bytes >= 1024, max_headers >= 8, max_unverified_body_reads >= 1"
        )
    if listen.body_timeout_seconds <= 0 or listen.header_timeout_seconds <= 0:
        raise ConfigError("config keys listen.body_timeout_seconds and listen.header_timeout_seconds must be positive")
    b = settings.breaker
    if not 0 < b.failure_ratio <= 1 or b.min_requests < 1 or b.half_open_probes < 1:
        raise ConfigError("config key breaker needs 0 < failure_ratio <= 1, min_requests >= 1, half_open_probes >= 1")
