"""``lambda-scheduler load``: its options, and the run they describe.

    lambda-scheduler load --function hello --rate 200 --duration 30s
    lambda-scheduler load --function hello=3 --function orders=1@orders.json \\
        --stage 10s:0-500 --stage 30s:500 --poisson --json out.json --plots plots/
    lambda-scheduler load --function hello --concurrency 16 --requests 10000

Prints a live line while stdout is a terminal, then the final table; ``--json`` saves the
results and ``--plots`` the PNGs (matplotlib needed). Exit status 1 when the echo check found
a reply that belonged to another request, or when no request succeeded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import uvloop

from ..config import Credential, parse_credentials
from ..errors import ConfigError
from .arrivals import ClosedLoop, OpenLoop, Stage, parse_duration
from .config import LoadConfig, LoadConfigError
from .plots import PlotsUnavailable, plot_all
from .progress import ProgressLine
from .results import table, to_json
from .runner import run_load
from .workload import Target, WorkloadError, encode, read_payloads

ENDPOINT_ENV = "LAMBDA_SCHEDULER_ENDPOINT_URL"
CREDENTIALS_ENV = "LAMBDA_SCHEDULER_CREDENTIALS"  # the server's own variable: one for both ends


class LoadUsageError(Exception):
    pass


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get(ENDPOINT_ENV, "http://127.0.0.1:9000"),
        help=f"any server of Lambda's Invoke API (default: http://127.0.0.1:9000; env: {ENDPOINT_ENV})",
    )
    parser.add_argument(
        "--function",
        action="append",
        required=True,
        metavar="NAME[=WEIGHT][@PAYLOAD_FILE]",
        help="a function of the mix, with its weight (default 1) and its events (a JSON file: one event "
        "or a list taken in turn); repeat for a weighted mix",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--rate", type=float, help="open loop: requests per second, constant")
    model.add_argument(
        "--stage",
        action="append",
        metavar="DURATION:RATE[-RATE]",
        help="open loop: a step (10s:200) or a ramp (10s:0-500); repeat for several stages",
    )
    model.add_argument("--concurrency", type=int, help="closed loop: callers, each waiting for its answer")
    parser.add_argument("--poisson", action="store_true", help="open loop: Poisson arrivals instead of evenly spaced")
    parser.add_argument("--requests", type=int, help="stop after dispatching this many requests")
    parser.add_argument("--duration", type=_duration, help="stop dispatching after this long (e.g. 30s, 2m)")
    parser.add_argument("--connections", type=int, help="open loop: keep-alive connections (default 256)")
    parser.add_argument("--max-in-flight", type=int, default=10_000, help="open loop: unanswered requests at most")
    parser.add_argument("--timeout", type=_duration, default=60.0, help="per request (default 60s)")
    parser.add_argument("--drain-timeout", type=_duration, help="wait for late answers at the end (default: --timeout)")
    parser.add_argument("--payload", default="{}", help="the event for functions without @FILE (default: {})")
    parser.add_argument("--payload-file", type=Path, help="events for functions without @FILE (one, or a list)")
    parser.add_argument("--no-tail", action="store_true", help="do not ask for the log (no cold / warm split)")
    parser.add_argument(
        "--verify-echo",
        metavar="FIELD",
        help="put a unique token in each event's FIELD and check the response returns it (the handler must echo it)",
    )
    parser.add_argument("--seed", type=int, help="seed for Poisson gaps and the function mix (repeatable runs)")
    parser.add_argument("--interval", type=_duration, default=1.0, help="progress and timeline interval (default 1s)")
    parser.add_argument(
        "--json", type=Path, help="write the results here (-: to stdout, the table then goes to stderr)"
    )
    parser.add_argument("--plots", type=Path, metavar="DIR", help="write latency_cdf.png and over_time.png here")
    parser.add_argument(
        "--progress", choices=("auto", "on", "off"), default="auto", help="live line (auto: when stdout is a terminal)"
    )
    add_signing(parser)


def add_signing(parser: argparse.ArgumentParser) -> None:
    """``--credentials`` / ``--region``: sign each request, for a server run with --auth sigv4."""
    parser.add_argument(
        "--credentials",
        metavar="KEY:SECRET",
        help=f"sign requests (AWS Signature Version 4) with this access key, for a server run with --auth sigv4 "
        f"(default: the first of {CREDENTIALS_ENV}, if set; otherwise requests are not signed)",
    )
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        help="region in the signature's scope (default: AWS_REGION, AWS_DEFAULT_REGION or us-east-1)",
    )


def credential(args: argparse.Namespace) -> Credential | None:
    """The access key a client signs with: --credentials, else the server's own variable."""
    given, source = args.credentials, "--credentials"
    if given is None:
        given, source = os.environ.get(CREDENTIALS_ENV), CREDENTIALS_ENV
    if not given:
        return None
    try:
        found = parse_credentials(given)
    except ConfigError as exc:
        raise LoadUsageError(f"{source}: {exc.message.split(': ', 1)[-1]}") from None
    if not found:
        raise LoadUsageError(f"{source}: expected KEY:SECRET")
    return found[0]


def _arrivals(args: argparse.Namespace) -> OpenLoop | ClosedLoop:
    if args.concurrency is not None:
        return ClosedLoop(args.concurrency)
    if args.rate is not None:
        if not args.rate > 0:
            raise LoadUsageError("--rate must be > 0")
        return OpenLoop((Stage(args.duration or math.inf, args.rate, args.rate),), args.poisson)
    return OpenLoop(tuple(Stage.parse(text) for text in args.stage), args.poisson)


def _default_payloads(args: argparse.Namespace) -> tuple[bytes, ...]:
    if args.payload_file is not None:
        return read_payloads(args.payload_file)
    try:
        return (encode(json.loads(args.payload)),)
    except ValueError:
        raise LoadUsageError(f"--payload is not JSON: {args.payload!r}") from None


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    try:
        defaults = _default_payloads(args)
        return LoadConfig(
            endpoint=args.endpoint_url,
            targets=tuple(Target.parse(text, defaults) for text in args.function),
            arrivals=_arrivals(args),
            requests=args.requests,
            duration_s=args.duration,
            connections=args.connections,
            max_in_flight=args.max_in_flight,
            request_timeout_s=args.timeout,
            drain_timeout_s=args.drain_timeout,
            tail=not args.no_tail,
            verify_field=args.verify_echo,
            seed=args.seed,
            interval_s=args.interval,
            credentials=credential(args),
            region=args.region,
        )
    except (LoadConfigError, WorkloadError, ValueError) as exc:
        raise LoadUsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    live = args.progress == "on" or (args.progress == "auto" and sys.stdout.isatty())
    progress = ProgressLine() if live else None
    result = uvloop.run(run_load(config, progress))
    if progress is not None:
        progress.finish()
    doc = to_json(result)
    to_stdout = args.json is not None and str(args.json) == "-"
    print(table(result), file=sys.stderr if to_stdout else sys.stdout)
    if to_stdout:
        print(json.dumps(doc, indent=2))
    elif args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
        print(f"results: {args.json}")
    if args.plots is not None:
        try:
            for path in plot_all(doc, args.plots):
                print(f"plot: {path}")
        except PlotsUnavailable as exc:
            print(f"plots skipped: {exc}", file=sys.stderr)
    failed = result.recorder.mismatches > 0 or (result.recorder.ok == 0 and result.recorder.sent > 0)
    return 1 if failed else 0
