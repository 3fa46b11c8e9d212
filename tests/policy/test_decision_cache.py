"""The exact decision cache: a cached answer only where the policy could not answer differently."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demo.auth import mint_demo_jwt
from gateway.policy import bundle
from gateway.policy.decision_cache import DecisionCache, analyze
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.engine import Decision
from tests.factories import REGO, policy_input

SHIPPED = bundle.build(REGO)


def _engine(entries: int = 10_000, blob: bytes = SHIPPED) -> EmbeddedEngine:
    engine = EmbeddedEngine("inline", poll_seconds=0, cache_entries=entries)
    engine.activate(blob)
    return engine


def _cache(engine: EmbeddedEngine) -> DecisionCache:
    active = engine._active
    assert active is not None and active.cache is not None
    return active.cache


def _settle(cache: DecisionCache) -> None:
    deadline = time.monotonic() + 10
    while cache._pending and time.monotonic() < deadline:
        time.sleep(0.005)


def _same(a: Decision, b: Decision) -> bool:
    return dataclasses.replace(a, decision_id="") == dataclasses.replace(b, decision_id="") and a.raw == b.raw


def test_reads_come_from_the_parser_up_to_the_first_variable_part() -> None:
    module = """package p

import input.alias

a if input.request.model == "x"

b if input.headers[h] == "y"

c if alias.inner

d := "input.not.a.ref"

e if { some k; input.m[input.which][k] }
"""
    reads = analyze({"p.rego": module})
    assert reads.paths == (("alias",), ("headers",), ("m",), ("request", "model"), ("which",))
    assert not reads.whole_input
    assert analyze({"q.rego": 'package q\n\nx := object.get(input, "a", 1)\n'}).whole_input


def test_volatile_rows_are_the_calls_not_the_strings_or_comments() -> None:
    module = 'package p\n\n# time.now_ns() here is a comment\ns := "time.now_ns()"\n\nt := time.now_ns()\n'
    assert analyze({"p.rego": module}).volatile_rows == {"p.rego": frozenset({6})}


def test_the_shipped_policy_is_cacheable_and_its_key_ignores_fields_it_never_reads() -> None:
    reads = _cache(_engine()).reads
    base = policy_input(use_case="discharge-summary")
    other = copy.deepcopy(base)
    other["request"]["prompt_tokens"] = 99_999
    other["context"]["client_ip"] = "10.1.2.3"
    other["request"]["stream"] = True
    assert reads.key(reads.project(base)) == reads.key(reads.project(other))
    changed = copy.deepcopy(base)
    changed["request"]["max_tokens"] = 257
    assert reads.key(reads.project(base)) != reads.key(reads.project(changed))
    absent = copy.deepcopy(base)
    del absent["context"]["use_case"]
    assert reads.key(reads.project(absent)) != reads.key(reads.project(base))  # absent is not null


def test_hits_get_their_own_decision_ids_and_equal_the_uncached_answer() -> None:
    cached, plain = _engine(), _engine(0)
    item = policy_input(use_case="discharge-summary")
    first = cached.decide_sync(item)
    _settle(_cache(cached))
    second = cached.decide_sync(item)
    assert _cache(cached).hits == 1
    assert first.decision_id != second.decision_id
    assert _same(second, plain.decide_sync(item)) and _same(first, second)


def test_a_jwt_answer_reads_the_clock_and_is_never_cached() -> None:
    engine = _engine()
    item = policy_input(None, jwt=mint_demo_jwt("radiology-apps"))
    assert engine.decide_sync(item).allow
    _settle(_cache(engine))
    engine.decide_sync(item)
    assert _cache(engine).hits == 0 and _cache(engine).refused == 1


def test_a_rule_that_reads_the_clock_only_on_one_branch() -> None:
    blob = bundle._pack(
        {
            ".manifest": b'{"revision": "t", "roots": ["gateway"]}',
            "gateway/x.rego": b"""package gateway

decision := {"allow": true, "at": time.now_ns()} if input.mode == "clock"

decision := {"allow": true, "at": 0} if input.mode == "fixed"
""",
        }
    )
    engine = _engine(blob=blob)
    cache = _cache(engine)
    fixed, clock = {"mode": "fixed"}, {"mode": "clock"}
    fixed_raw = engine._active.engine.eval_document("gateway.decision", fixed)  # type: ignore[union-attr]
    clock_raw = engine._active.engine.eval_document("gateway.decision", clock)  # type: ignore[union-attr]
    assert cache.verify_now(cache.reads.key(fixed), fixed, fixed_raw)
    assert not cache.verify_now(cache.reads.key(clock), clock, clock_raw)


def test_an_analysis_that_missed_a_read_cannot_poison_the_cache() -> None:
    """Were a read path ever missed, the projection's answer would differ from the one served: refused."""
    engine = _engine()
    cache = _cache(engine)
    item = policy_input("gw-demo-marketing", model="gpt-4o-mini", max_tokens=5000)  # denied: over the cap
    served = engine._active.engine.eval_document("gateway.decision", item)  # type: ignore[union-attr]
    blind = cache.reads.project(item)
    del blind["request"]["max_tokens"]  # as if the analysis had not seen input.request.max_tokens
    assert not cache.verify_now(cache.reads.key(blind), blind, served)
    assert len(cache) == 0 and cache.mismatched == 1


KEYS = ["gw-demo-cardiology", "gw-demo-eu-research", "gw-demo-marketing", "nope", None]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "text-embedding-3-small", "other"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(KEYS),
    model=st.sampled_from(MODELS),
    use_case=st.sampled_from([None, "discharge-summary", "triage", "x", ""]),
    classification=st.sampled_from([None, "phi", "pii", "none", "weird"]),
    max_tokens=st.sampled_from([None, 1, 256, 4096, 100_000]),
    endpoint=st.sampled_from(["chat.completions", "embeddings", "responses", "messages"]),
    signals=st.dictionaries(st.sampled_from(["ssn", "mrn", "email", "dob"]), st.integers(0, 3), max_size=3),
    noise=st.integers(0, 10**6),
)
def test_cached_decisions_equal_uncached_ones(
    key: str | None,
    model: str,
    use_case: str | None,
    classification: str | None,
    max_tokens: int | None,
    endpoint: str,
    signals: dict[str, int],
    noise: int,
) -> None:
    """Over the shipped policy's whole input space: first a miss, then (verified) a hit on an input that
    differs only in fields the policy never reads; both equal the cache-off engine's answer."""
    item: dict[str, Any] = policy_input(
        key, model=model, use_case=use_case, classification=classification, max_tokens=max_tokens
    )
    item["request"]["endpoint"] = endpoint
    item["content"] = {"signals": signals, "chars": noise, "error": False}
    variant = copy.deepcopy(item)
    variant["request"]["prompt_tokens"] = noise
    variant["content"]["chars"] = noise + 1
    cache = _cache(CACHED)
    first = CACHED.decide_sync(item)
    projection = cache.reads.project(item)
    key_text = cache.reads.key(projection)
    stored = first.error is None and (key_text in cache._entries or cache.verify_now(key_text, projection, first.raw))
    if key is not None:  # an API key never reaches the JWT rule, which reads the clock: always cacheable
        assert stored
    hits = cache.hits
    second = CACHED.decide_sync(variant)
    expected = PLAIN.decide_sync(variant)
    assert _same(first, expected) and _same(second, expected)
    assert cache.hits == hits + (1 if stored else 0)


CACHED, PLAIN = _engine(), _engine(0)


def test_cache_off_and_whole_input_policies_have_no_cache(tmp_path: Path) -> None:
    assert _engine(0)._active.cache is None  # type: ignore[union-attr]
    blob = bundle._pack(
        {
            ".manifest": b'{"revision": "w", "roots": ["gateway"]}',
            "gateway/x.rego": b'package gateway\n\ndecision := {"allow": count(object.keys(input)) > 0}\n',
        }
    )
    assert _engine(blob=blob)._active.cache is None  # type: ignore[union-attr]


def test_a_request_editing_its_decision_cannot_change_the_next_hit() -> None:
    """Whatever a caller does to one decision's result, the next hit is whole: every hit is a copy."""
    engine = _engine()
    item = policy_input(use_case="discharge-summary")
    engine.decide_sync(item)
    _settle(_cache(engine))
    first = engine.decide_sync(item)
    first.raw.clear()  # as an erasing mask would
    second = engine.decide_sync(item)
    assert _cache(engine).hits == 2 and second.raw and second.allow


def _decision_bundle(revision: str, allow: bool) -> bytes:
    rule = f'package gateway\n\ndecision := {{"allow": {str(allow).lower()}, "who": input.who}}\n'
    return bundle._pack(
        {".manifest": f'{{"revision": "{revision}", "roots": ["gateway"]}}'.encode(), "gateway/x.rego": rule.encode()}
    )


def test_a_new_bundle_never_serves_the_old_bundles_answers() -> None:
    engine = EmbeddedEngine("inline", poll_seconds=0)
    engine.activate(_decision_bundle("a", True))
    item = {"who": "w"}
    engine.decide_sync(item)
    old = _cache(engine)
    _settle(old)
    engine.decide_sync(item)
    assert old.hits == 1 and old.get(old.reads.key(item)) == {"allow": True, "who": "w"}
    engine.activate(_decision_bundle("b", False))
    after = engine.decide_sync(item)
    new = _cache(engine)
    assert new is not old and after.policy_revision == "b" and new.hits == 0 and new.misses == 1
    _settle(new)
    assert new.get(new.reads.key(item)) == {"allow": False, "who": "w"}


def test_the_cache_keeps_at_most_its_entries_newest_first() -> None:
    engine = EmbeddedEngine("inline", poll_seconds=0, cache_entries=2)
    engine.activate(_decision_bundle("a", True))
    cache = _cache(engine)
    for who in ("w1", "w2", "w3"):
        item = {"who": who}
        raw = engine._active.engine.eval_document("gateway.decision", item)  # type: ignore[union-attr]
        assert cache.verify_now(cache.reads.key(item), item, raw)
    assert len(cache) == 2
    assert cache.get(cache.reads.key({"who": "w1"})) is None  # the oldest went first
    assert cache.get(cache.reads.key({"who": "w3"})) == {"allow": True, "who": "w3"}
