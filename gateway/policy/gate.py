"""The one policy gate every endpoint goes through.

    decide:  facts about the request -> policy input (the one shape) -> the Decision, timed, logged, counted
    admit:   a fail-closed error the engine could not answer        -> PolicyUnavailable (503, Retry-After)
             no credential the policy accepts                       -> Unauthenticated (401)
             any other fail-closed error (undefined, eval, malformed) -> PolicyDenied (403)
    enforce: a deny                                                 -> PolicyDenied (403, the policy's reasons)

An endpoint sets the decision on its record, calls `admit`, answers what it must before a deny (a 400
for a model this gateway does not serve comes after 401 and before 403), then calls `enforce`. Every
endpoint gives the same status for the same policy outcome, and every decision is timed, logged and
counted the same way.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from gateway.authn import Principal
from gateway.errors import PolicyDenied, PolicyUnavailable, Unauthenticated
from gateway.observe.metrics import Metrics
from gateway.policy.decision_log import DecisionLogger
from gateway.policy.engine import UNAVAILABLE, Decision, PolicyEngine, PolicyQueryError, new_decision_id

DECISION_PATH = "gateway/decision"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What an endpoint tells the policy about a request: metadata only, never content."""

    endpoint: str  # chat.completions | embeddings | responses | messages | models.list
    model: str | None  # None when the client named a model this gateway does not serve (client text)
    stream: bool = False
    max_tokens: int | None = None
    prompt_tokens: int = 0
    provider: str | None = None  # a follow-up's provider: the one holding the earlier response
    content: dict[str, Any] | None = None  # the content signals ({signals, chars, error}), never the text


@dataclass(frozen=True, slots=True)
class RequestContext:
    use_case: str | None
    data_classification: str | None
    client_ip: str | None


def policy_input(principal: Principal, facts: RequestFacts, context: RequestContext) -> dict[str, Any]:
    """The policy input, in the one shape the Rego and the decision-log masks read."""
    value: dict[str, Any] = {
        "principal": principal.as_input(),
        "request": {
            "endpoint": facts.endpoint,
            "model": facts.model,
            "stream": facts.stream,
            "max_tokens": facts.max_tokens,
            "prompt_tokens": facts.prompt_tokens,
            "provider": facts.provider,
        },
        "context": {
            "use_case": context.use_case,
            "data_classification": context.data_classification,
            "client_ip": context.client_ip,
        },
    }
    if facts.content is not None:
        value["content"] = facts.content
    return value


@dataclass(frozen=True, slots=True)
class OutputVerdict:
    verdict: str  # allow | redact | block
    redact: tuple[str, ...] = ()
    message: str = ""


OUTPUT_PATH = "gateway.output_decision"


class PolicyGate:
    def __init__(self, policy: PolicyEngine, metrics: Metrics, decision_log: DecisionLogger) -> None:
        self._policy = policy
        self._metrics = metrics
        self._decision_log = decision_log

    async def decide(self, principal: Principal, facts: RequestFacts, context: RequestContext) -> Decision:
        """The decision for one request (never raises: the engine fails closed into a deny)."""
        value = policy_input(principal, facts, context)
        started = time.perf_counter_ns()
        decision = await self._policy.decide(value)
        elapsed = time.perf_counter_ns() - started
        self._metrics.policy_eval.observe(elapsed / 1e9)
        self._decision_log.record(value, decision, path=DECISION_PATH, eval_ns=elapsed)
        outcome = "error" if decision.error else ("allow" if decision.allow else "deny")
        self._metrics.policy_decisions.labels(result=outcome).inc()
        return decision

    @classmethod
    def admit(cls, decision: Decision) -> None:
        """Raise for what is not a plain allow or deny (see the table above)."""
        if decision.error in UNAVAILABLE:
            raise PolicyUnavailable(
                "the policy engine cannot answer now; retry later", retry_after=1, decision_id=decision.decision_id
            )
        if decision.unauthenticated:
            raise Unauthenticated("no valid API key or token for a known team", decision_id=decision.decision_id)
        if decision.error:
            cls.enforce(decision)

    @staticmethod
    def enforce(decision: Decision) -> None:
        """A deny as a 403 whose message carries the policy's reason codes."""
        if decision.allow:
            return
        reasons = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons) or "denied by policy"
        raise PolicyDenied(reasons, decision_id=decision.decision_id)

    async def decide_output(
        self,
        principal: Principal,
        facts: RequestFacts,
        context: RequestContext,
        output: dict[str, Any],
        decision: Decision,
    ) -> OutputVerdict:
        """The verdict on a whole answer's content signals (data.gateway.output_decision). Fails closed:
        an undefined or malformed verdict, or an engine that cannot answer, blocks the answer."""
        value = {**policy_input(principal, facts, context), "output": output}
        started = time.perf_counter_ns()
        try:
            raw = await self._policy.query(OUTPUT_PATH, value)
            verdict = _output_verdict(raw)
        except (PolicyQueryError, ValueError, TypeError):
            raw, verdict = None, OutputVerdict("block", (), "the output policy could not decide: answer withheld")
        elapsed = time.perf_counter_ns() - started
        logged = dataclasses.replace(
            decision,
            allow=verdict.verdict != "block",
            decision_id=new_decision_id(),
            raw=raw if isinstance(raw, dict) else {"verdict": verdict.verdict},
            error=None if raw is not None else "undefined",
        )
        self._decision_log.record(value, logged, path=OUTPUT_PATH.replace(".", "/"), eval_ns=elapsed)
        return verdict


def _output_verdict(raw: Any) -> OutputVerdict:
    if not isinstance(raw, dict) or raw.get("verdict") not in ("allow", "redact", "block"):
        raise ValueError("output verdict is malformed")
    redact = raw.get("redact") or []
    if not isinstance(redact, list) or not all(isinstance(t, str) for t in redact):
        raise ValueError("output redact is not a list of types")
    reasons = raw.get("reasons") or []
    message = (
        "; ".join(f"{r.get('code')}: {r.get('message')}" for r in reasons if isinstance(r, dict))
        or "the answer was withheld by policy"
    )
    return OutputVerdict(raw["verdict"], tuple(redact), message)
