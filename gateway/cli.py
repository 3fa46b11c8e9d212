"""Command line: `gateway serve | demo | bundle build|verify | policy test|check|eval | ledger migrate |
usage export|verify`.

Errors are one line saying what is wrong, exit non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.errors import BundleError, ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Policy-as-code AI API gateway")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="YAML config file (or GATEWAY_CONFIG)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes on one port (default listen.workers); >1 needs Redis")
    serve.add_argument("--worker", help=argparse.SUPPRESS)  # i/N: set by the parent for its children

    demo = sub.add_parser("demo", help="run the gateway on embedded defaults against stand-in providers")
    demo.add_argument("--quiet-logs", action="store_true", help="do not echo the gateway's JSON log lines")

    bundle = sub.add_parser("bundle", help="build or verify OPA bundles").add_subparsers(dest="action", required=True)
    build = bundle.add_parser("build", help="build an OPA bundle from a policy folder")
    build.add_argument("--rego", default="rego")
    build.add_argument("--revision")
    build.add_argument("--signing-key")
    build.add_argument("--key-id", default="default")
    build.add_argument("-o", "--output", default="bundles/gateway.tar.gz")
    verify = bundle.add_parser("verify", help="check a bundle's layout, manifest and signature")
    verify.add_argument("file")
    verify.add_argument("--verification-key")

    policy = sub.add_parser("policy", help="test, check and evaluate policies").add_subparsers(
        dest="action", required=True
    )
    test = policy.add_parser("test", help="run Rego tests with `opa test` semantics")
    test.add_argument("paths", nargs="*", default=["rego", "policy-tests"])
    test.add_argument("-v", "--verbose", action="store_true")
    test.add_argument("-c", "--coverage", action="store_true")
    test.add_argument("--threshold", type=float, default=0.0, help="coverage percentage to meet (implies coverage)")
    test.add_argument("-f", "--format", choices=["pretty", "json"], default="pretty")
    test.add_argument("-r", "--run", help="run only tests whose data.<package>.<name> matches this regex")
    test.add_argument("--ignore", action="append", default=[], help="file or folder name pattern to leave out")
    test.add_argument("-z", "--exit-zero-on-skipped", action="store_true", help="skipped tests do not fail the run")
    test.add_argument("--fail-on-empty", action="store_true", help="exit 1 when no test is found")
    test.add_argument("-t", "--timeout", default="5s", help="per-test timeout, a Go duration (5s, 500ms; 0: none)")
    test.add_argument("-b", "--bundle", action="store_true", help="load the paths as bundles (folders or .tar.gz)")
    test.add_argument("--v0-compatible", action="store_true", help="read modules written in Rego v0 syntax")
    test.add_argument("--explain", choices=["fails", "full", "notes", "debug"], help="traces to show (implies -v)")
    test.add_argument("--var-values", action="store_true", help="show local variable values in traces")
    check = policy.add_parser("check", help="compile policies; errors as file:row: message")
    check.add_argument("paths", nargs="*", default=["rego"])
    check.add_argument("-b", "--bundle", action="store_true", help="load the paths as bundles (folders or .tar.gz)")
    check.add_argument("--v0-compatible", action="store_true", help="read modules written in Rego v0 syntax")
    evaluate = policy.add_parser("eval", help="print the decision for one input")
    evaluate.add_argument("--input", required=True)
    evaluate.add_argument("--bundle", default="bundles/gateway.tar.gz")
    evaluate.add_argument("--verification-key")
    ledger = sub.add_parser("ledger", help="the usage ledger's store").add_subparsers(dest="action", required=True)
    migrate = ledger.add_parser("migrate", help="create or upgrade the ledger schema")
    migrate.add_argument("--config", help="YAML config file (or GATEWAY_CONFIG)")
    usage = sub.add_parser("usage", help="export and verify the usage ledger").add_subparsers(
        dest="action", required=True
    )
    export = usage.add_parser("export", help="ledger rows as CSV or FOCUS 1.2")
    export.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    export.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD (UTC), included")
    export.add_argument("--format", choices=["csv", "focus"], default="csv")
    export.add_argument("-o", "--output")
    export.add_argument("--config")
    check = usage.add_parser("verify", help="check every chain and checkpoint; exit 2 naming the first bad row")
    check.add_argument("--config")
    return parser


def _ledger_migrate(args: argparse.Namespace) -> int:
    from gateway.ledger import commands

    return commands.migrate(args.config)


def _usage_export(args: argparse.Namespace) -> int:
    from gateway.ledger import commands

    return commands.export(args.config, args.start, args.end, args.format, args.output)


def _usage_verify(args: argparse.Namespace) -> int:
    from gateway.ledger import commands

    return commands.verify_command(args.config)


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _bundle_build(args: argparse.Namespace) -> int:
    from gateway.policy import bundle

    blob = bundle.build(
        Path(args.rego), revision=args.revision, signing_key=_read(args.signing_key, "signing key"), kid=args.key_id
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    parsed = bundle.read(blob)
    signed = "yes" if args.signing_key else "no"
    print(f"built {out} revision={parsed.revision} modules={len(parsed.modules)} signed={signed}")
    return 0


def _bundle_verify(args: argparse.Namespace) -> int:
    from gateway.policy import bundle

    blob = _read(args.file, "bundle")
    assert blob is not None
    key = _read(args.verification_key, "verification key")
    parsed = bundle.read(blob, verification_key=key)
    state = (
        "signature verified"
        if key
        else ("signed, signature not checked (no --verification-key)" if parsed.signed else "unsigned")
    )
    print(f"ok revision={parsed.revision} roots={','.join(parsed.roots)} modules={len(parsed.modules)} {state}")
    return 0


def _policy_test(args: argparse.Namespace) -> int:
    from gateway.policy import testing

    options = testing.Options(
        verbose=args.verbose or args.explain is not None,
        coverage=args.coverage,
        threshold=args.threshold,
        fmt="json" if args.format == "json" else "plain",
        run=args.run,
        ignore=[p for arg in args.ignore for p in arg.split(",") if p],
        exit_zero_on_skipped=args.exit_zero_on_skipped,
        fail_on_empty=args.fail_on_empty,
        timeout_ns=_go_duration(args.timeout),
        bundle=args.bundle,
        v0_compatible=args.v0_compatible,
        explain=args.explain or "default",
        var_values=args.var_values,
    )
    return testing.main(args.paths, options, out=sys.stdout, err=sys.stderr)


def _go_duration(text: str) -> int:
    from gateway.policy.testing import parse_go_duration

    try:
        return parse_go_duration(text)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from exc


def _policy_check(args: argparse.Namespace) -> int:
    from gateway.policy import testing
    from gateway.policy.compiler import compile_engine

    try:
        options = testing.Options(bundle=args.bundle, v0_compatible=args.v0_compatible)
        loaded = testing.load(args.paths, options, all_data=False)
        compile_engine(loaded.modules, loaded.data).close()
    except BundleError as exc:
        for line in str(exc).split("; "):
            print(line, file=sys.stderr)
        return 1
    return 0


def _policy_eval(args: argparse.Namespace) -> int:
    from gateway.policy.embedded import EmbeddedEngine
    from gateway.policy.inputs import check_input

    raw = _read(args.input, "input file")
    assert raw is not None
    try:
        policy_input = json.loads(raw)
        check_input(policy_input)
    except ValueError as exc:
        raise ConfigError(f"{args.input}: {exc}") from exc
    engine = EmbeddedEngine(
        args.bundle, verification_key=_read(args.verification_key, "verification key"), poll_seconds=0
    )
    blob = _read(args.bundle, "bundle")
    assert blob is not None
    engine.activate(blob)
    decision = engine.decide_sync(policy_input)
    out = (
        dict(decision.raw)
        if decision.raw
        else {"allow": False, "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons]}
    )
    out.update(decision_id=decision.decision_id, policy_revision=decision.policy_revision)
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def _go_gc_tuned(argv: list[str]) -> None:
    """Re-exec once with GOGC=400 unless the operator set GOGC.

    The OPA library's Go runtime reads GOGC from the environment the process
    started with, so it cannot be changed from Python later. 400 means far
    fewer collections: decision p99 fell from ~1.6 ms to ~0.7 ms in
    bench/decision_latency.py for a few MB more heap.
    """
    if "GOGC" not in os.environ:
        os.execve(sys.executable, [sys.executable, "-m", "gateway", *argv], {**os.environ, "GOGC": "400"})  # noqa: S606


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    return serve(config_path=args.config, host=args.host, port=args.port, workers=args.workers, worker=args.worker)


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo.run import run_demo

    return asyncio.run(run_demo(echo_logs=not args.quiet_logs))


_COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("serve", None): _serve,
    ("demo", None): _demo,
    ("bundle", "build"): _bundle_build,
    ("bundle", "verify"): _bundle_verify,
    ("policy", "test"): _policy_test,
    ("policy", "check"): _policy_check,
    ("policy", "eval"): _policy_eval,
    ("ledger", "migrate"): _ledger_migrate,
    ("usage", "export"): _usage_export,
    ("usage", "verify"): _usage_verify,
}


def main(argv: list[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(raw_argv)
    if args.command in ("serve", "demo") and argv is None:
        _go_gc_tuned(raw_argv)
    handler = _COMMANDS[(args.command, getattr(args, "action", None))]
    try:
        return handler(args)
    except (BundleError, ConfigError) as exc:
        if args.debug:
            raise
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
