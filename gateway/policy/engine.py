"""The policy seam: one question (`data.gateway.decision`), one answer (`Decision`).

Fail closed: an undefined result, an evaluation error or a malformed answer
becomes a deny whose reason says which, never an exception to the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from gateway.ids import new_id

LOG_LEVELS = ("content", "metadata")
# Fail-closed errors that mean the policy engine could not answer (503), as opposed to a policy that
# answered badly or not at all (undefined, malformed, eval_error: 403).
UNAVAILABLE = frozenset({"unavailable", "timeout", "server_error", "connection"})


Masker = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    team: str
    use_case: str
    reasons: tuple[Reason, ...]
    log_level: str
    routes: tuple[Route, ...]
    tokens_per_minute: int
    max_tokens: int
    data_classification: str
    decision_id: str
    policy_revision: str
    error: str | None = None  # set when the engine failed closed: "undefined" | "eval_error" | "malformed"
    # dollar budgets: (scope, window, nano-dollars), scope "team" or "use_case"; window "day" or "month"
    dollar_limits: tuple[tuple[str, str, int], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def unauthenticated(self) -> bool:
        return any(r.code == "unauthenticated" for r in self.reasons)


class PolicyEngine(Protocol):
    """Anything that can answer the gateway's one policy question."""

    @property
    def revision(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    async def decide(self, policy_input: dict[str, Any]) -> Decision: ...

    def known_api_key_hashes(self) -> frozenset[str] | None:
        """The API key hashes the active policy lists (None: unknown here, wait for the decision).

        Only a pre-filter: a key not listed is refused before the body is read; a listed key still
        needs the decision's allow."""
        ...

    def mrn_patterns(self) -> tuple[str, ...]:
        """The active policy data's `content.mrn_patterns`, for the content detectors (() when none)."""
        ...

    async def query(self, path: str, policy_input: dict[str, Any]) -> Any:
        """The document at data.<path> (dots) for this input; PolicyQueryError when it is undefined or the
        engine cannot answer (callers fail closed)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, Any]:
        """For /admin/status: the engine, its revision and its last error."""
        ...

    @property
    def masker(self) -> Masker | None:
        """How this engine masks decision-log events with the bundle's system.log rules (None: it does not;
        OPA's own decision logger does that in server mode)."""
        ...


class PolicyQueryError(Exception):
    """A policy document could not be evaluated (undefined, an error, or the engine unreachable)."""


def new_decision_id() -> str:
    return new_id()


def fail_closed(error: str, message: str, *, decision_id: str, revision: str) -> Decision:
    """The deny the gateway returns when the policy could not give a usable answer."""
    return Decision(
        allow=False,
        team="",
        use_case="",
        reasons=(Reason(code=f"policy_{error}", message=message),),
        log_level="metadata",
        routes=(),
        tokens_per_minute=0,
        max_tokens=0,
        data_classification="phi",
        decision_id=decision_id,
        policy_revision=revision,
        error=error,
    )


def parse_decision(raw: Any, *, decision_id: str, revision: str) -> Decision:
    """Turn the policy's JSON answer into a Decision, or a fail-closed deny if it is malformed."""
    try:
        return _parse(raw, decision_id=decision_id, revision=revision)
    except (KeyError, TypeError, ValueError) as exc:
        return fail_closed(
            "malformed", f"policy decision is malformed: {exc}", decision_id=decision_id, revision=revision
        )


def _parse(raw: Any, *, decision_id: str, revision: str) -> Decision:
    if not isinstance(raw, dict):
        raise TypeError("decision is not an object")
    allow = raw["allow"]
    if not isinstance(allow, bool):
        raise TypeError("allow is not a boolean")
    log_level = raw.get("log_level", "metadata")
    if log_level not in LOG_LEVELS:
        raise ValueError("log_level is not content|metadata")
    reasons = tuple(Reason(code=_str(r, "code"), message=_str(r, "message")) for r in _list(raw.get("reasons", [])))
    routes = tuple(Route(provider=_str(r, "provider"), model=_str(r, "model")) for r in _list(raw.get("routes", [])))
    limits = raw.get("limits") or {}
    if not isinstance(limits, dict):
        raise TypeError("limits is not an object")
    tpm, cap = _int(limits.get("tokens_per_minute", 0)), _int(limits.get("max_tokens", 0))
    if allow and (not routes or tpm <= 0 or cap <= 0):
        raise ValueError("an allow needs routes and positive limits")
    if allow and reasons:
        raise ValueError("an allow carries deny reasons")
    dollars = tuple(
        (scope, window, nusd)
        for (scope, window), name in DOLLAR_LIMITS.items()
        if (nusd := _nusd(limits.get(name))) is not None
    )
    return Decision(
        allow=allow,
        team=_opt_str(raw.get("team")),
        use_case=_opt_str(raw.get("use_case")),
        reasons=reasons,
        log_level=log_level,
        routes=routes,
        tokens_per_minute=tpm,
        max_tokens=cap,
        data_classification=_opt_str(raw.get("data_classification")) or "phi",
        decision_id=decision_id,
        policy_revision=revision,
        raw=raw,
        dollar_limits=dollars,
    )


def stamped(template: Decision, *, decision_id: str, raw: dict[str, Any]) -> Decision:
    """`template` (a parsed answer) as another request's decision: its own id and its own copy of the raw
    answer. What parse_decision would return for that raw answer, without parsing it again."""
    t = template
    return Decision(
        t.allow,
        t.team,
        t.use_case,
        t.reasons,
        t.log_level,
        t.routes,
        t.tokens_per_minute,
        t.max_tokens,
        t.data_classification,
        decision_id,
        t.policy_revision,
        t.error,
        t.dollar_limits,
        raw,
    )


DOLLAR_LIMITS = {
    ("team", "day"): "usd_per_day",
    ("team", "month"): "usd_per_month",
    ("use_case", "day"): "use_case_usd_per_day",
    ("use_case", "month"): "use_case_usd_per_month",
}


def _nusd(value: Any) -> int | None:
    """A dollar limit as nano-dollars (exact from the JSON number's text), None when there is none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value > 1e12:
        raise TypeError("a dollar limit is not a non-negative number")
    return int(Decimal(repr(value)) * 1_000_000_000)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _str(obj: Any, key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _opt_str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise TypeError("expected an integer")
    return int(value)
