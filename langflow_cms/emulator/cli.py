"""Command-line front end: ``add_arguments`` wires the flags into any argparse parser (the project's
``langflow-cms emulator`` subcommand reuses it) and ``run`` serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from langflow_cms.dev import DEFAULT_EMULATOR_PORT, DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET

from .auth import KeyPair, parse_key_spec
from .faults import Faults
from .limits import MAX_METRIC_ENTRIES
from .server import DEFAULT_USER_ID, Emulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's flags to ``parser``."""
    parser.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT, help="0 picks a free port")
    parser.add_argument(
        "--host", default="127.0.0.1", help="listen address (non-loopback needs --allow-remote)"
    )
    parser.add_argument("--allow-remote", action="store_true", help="permit a non-loopback --host")
    parser.add_argument("--db", metavar="PATH", help="SQLite file to keep data in (default: in memory)")
    parser.add_argument(
        "--key",
        metavar="ID:SECRET[:TOKEN]",
        action="append",
        type=parse_key_spec,
        help="accepted AccessKey, repeatable; with TOKEN it is an STS key (default: the dev key pair)",
    )
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="sanitise names/dimensions like real CMS instead of rejecting them",
    )
    parser.add_argument("--max-entries", type=int, default=MAX_METRIC_ENTRIES, help="MetricList.N limit")
    parser.add_argument("--user-id", default=DEFAULT_USER_ID, help="account id for acs_customMetric_<id>")
    faults = parser.add_argument_group("fault injection (PutCustomMetric unless --fault-action is given)")
    faults.add_argument(
        "--throttle-ratio", type=float, default=0.0, help="share answered 400 Throttling.User"
    )
    faults.add_argument("--error-ratio", type=float, default=0.0, help="share answered 500/503")
    faults.add_argument("--drop-ratio", type=float, default=0.0, help="share closed without an answer")
    faults.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds added before every answer to a fault action; the data is stored before the wait",
    )
    faults.add_argument("--body-error", metavar="CODE", help="answer HTTP 200 with this body Code")
    faults.add_argument("--qps", type=float, help="calls per second before Throttling.User")
    faults.add_argument("--script", help="comma-separated answers, one per call, e.g. Throttling.User,ok")
    faults.add_argument("--seed", type=int, help="random seed for the ratios")
    faults.add_argument(
        "--fault-action",
        metavar="ACTION",
        action="append",
        dest="fault_actions",
        help="API action the faults apply to, repeatable (default: PutCustomMetric), e.g. PutCustomEvent",
    )


def _faults_from(args: argparse.Namespace) -> Faults:
    faults = Faults(
        throttle_ratio=args.throttle_ratio,
        error_ratio=args.error_ratio,
        drop_ratio=args.drop_ratio,
        latency=args.latency,
        body_error=args.body_error,
        qps=args.qps,
        script=[t.strip() for t in args.script.split(",") if t.strip()] if args.script else [],
        seed=args.seed,
        actions=args.fault_actions or ["PutCustomMetric"],
    )
    faults.validate()
    return faults


def run(args: argparse.Namespace) -> int:
    """Serve a local CloudMonitor emulator until interrupted."""
    keys: list[KeyPair] = args.key or [KeyPair(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET)]
    try:
        emulator = Emulator(
            args.port,
            host=args.host,
            keys=keys,
            strict=args.strict,
            db_path=args.db,
            max_entries=args.max_entries,
            allow_remote=args.allow_remote,
            user_id=args.user_id,
            faults=_faults_from(args),
        )
        emulator.start()
    except (ValueError, OSError) as exc:
        print(f"cms emulator: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        key_ids = ", ".join(key.key_id for key in keys)
        print(
            f"CMS emulator listening on {emulator.endpoint} (key ids: {key_ids}; strict={args.strict})",
            flush=True,
        )
        stop.wait()
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
