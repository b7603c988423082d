"""Command line: ``lambda-scheduler serve [TEMPLATE] [options]``, ``lambda-scheduler invoke``,
``lambda-scheduler events`` (the Event invocations a running server holds) and
``lambda-scheduler load`` (the load-testing harness; its options and run live in scheduler/load/).

Every setting of ``serve`` comes from its flag, else from its ``LAMBDA_SCHEDULER_*`` environment
variable, else from the default of :class:`SchedulerConfig` / :class:`ServerConfig`; ``--help``
shows each default and variable. ``serve`` runs on uvloop (server.py does the serving).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import uvloop

from . import log_writer, runtimes_cli
from .cfn import TemplateError
from .config import (
    AUTH_MODES,
    KEEP_ALIVE_POLICIES,
    LOG_LEVELS,
    Credential,
    SchedulerConfig,
    ServerConfig,
    parse_credentials,
)
from .errors import ConfigError, RuntimeUnavailable
from .events import EventState
from .events.destinations import timestamp
from .load import cli as load_cli
from .server import serve, setup_logging
from .template import Template, load_template

BUNDLED_TEMPLATE = Path(__file__).resolve().parent.parent / "examples" / "template.yaml"
ENV_PREFIX = "LAMBDA_SCHEDULER_"
PROG = "lambda-scheduler"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


_SWITCH = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def _switch(text: str) -> bool:
    try:
        return _SWITCH[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


def _isolation(text: str) -> str:
    if text not in ("auto", "fallback"):
        raise ValueError(text)
    return text


def _keep_alive(text: str) -> str:
    if text not in KEEP_ALIVE_POLICIES:
        raise ValueError(text)
    return text


def _uid_base(text: str) -> int | None:
    return None if text.strip().lower() == "none" else int(text)


def _interpreters(text: str) -> tuple[tuple[str, str], ...]:
    """``python3.12=/path/to/python`` items, comma-separated (a repeated flag is joined so)."""
    pairs = []
    for item in _names(text):
        runtime, sep, path = item.partition("=")
        if not sep or not runtime.strip() or not path.strip():
            raise ValueError(item)
        pairs.append((runtime.strip(), path.strip()))
    return tuple(pairs)


def _auth(text: str) -> str:
    if text not in AUTH_MODES:
        raise ValueError(text)
    return text


def _credentials(text: str) -> tuple[Credential, ...]:
    try:
        return parse_credentials(text)
    except ConfigError:
        raise ValueError(text) from None


@dataclass(frozen=True)
class Setting:
    """One ``serve`` option: its flag, the config it sets, how to read it, what it means."""

    flag: str
    target: Literal["scheduler", "server"]
    field: str
    parse: Callable[[str], Any]
    help: str
    unset: str = "none"  # what a default of None means, for --help
    repeatable: bool = False  # the flag may be given several times; the values add up
    on_off: bool = False  # the flag alone means on; its variable says on or off
    metavar: str | None = None  # how --help names the value (default: the field's name)
    secret: bool = False  # never echo the value in an error message

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()

    def default(self) -> Any:
        config = SchedulerConfig if self.target == "scheduler" else ServerConfig
        found = next(f for f in dataclasses.fields(config) if f.name == self.field)
        if found.default_factory is not dataclasses.MISSING:
            return found.default_factory()
        return found.default


SETTINGS = (
    Setting("--host", "server", "host", str, "address to listen on; 0.0.0.0 exposes the server to the network"),
    Setting("--port", "server", "port", int, "port to listen on; 0 picks a free one"),
    Setting(
        "--account-concurrency", "scheduler", "account_concurrency", int, "concurrent executions for the whole account"
    ),
    Setting(
        "--min-unreserved-concurrency",
        "scheduler",
        "min_unreserved_concurrency",
        int,
        "concurrency that reserved concurrency may not take from the account",
    ),
    Setting("--scale-limit", "scheduler", "scale_limit", int, "new environments a function may start per scale window"),
    Setting("--scale-window", "scheduler", "scale_window_s", float, "seconds over which --scale-limit refills"),
    Setting("--idle-ttl", "scheduler", "idle_ttl_s", float, "seconds an idle environment is kept warm"),
    Setting(
        "--keep-alive",
        "scheduler",
        "keep_alive",
        _keep_alive,
        "fixed: idle environments stay warm for --idle-ttl; hybrid: per function, a window learnt from its "
        "inter-arrival times, pre-warming a new environment before a predictable call",
    ),
    Setting("--max-lifetime", "scheduler", "max_lifetime_s", float, "seconds after which an environment is recycled"),
    Setting("--init-timeout", "scheduler", "init_timeout_s", float, "seconds an environment's Init may take"),
    Setting("--shutdown-timeout", "scheduler", "shutdown_timeout_s", float, "seconds between SIGTERM and SIGKILL"),
    Setting("--drain-timeout", "scheduler", "drain_timeout_s", float, "seconds in-flight invocations get on stop"),
    Setting("--region", "scheduler", "region", str, "region in ARNs and AWS_REGION"),
    Setting("--account-id", "scheduler", "account_id", str, "12-digit account id in ARNs"),
    Setting("--preload", "scheduler", "preload", _names, "comma-separated modules imported once, before any fork"),
    Setting(
        "--isolation",
        "scheduler",
        "isolation",
        _isolation,
        "auto: the strongest isolation the host allows (cgroups, a private /tmp, a uid per function); "
        "fallback: the unprivileged mechanisms (RSS watchdog, TMPDIR, rlimits)",
    ),
    Setting("--freeze", "scheduler", "freeze_idle", _switch, "on|off: stop idle environments (SIGSTOP) between invocations"),
    Setting(
        "--freeze-delay", "scheduler", "freeze_delay_s", float, "seconds an environment stays idle before it is frozen; 0: at once"
    ),
    Setting(
        "--sandbox-uid-base",
        "scheduler",
        "sandbox_uid_base",
        _uid_base,
        "as root, each function's environments run as the lowest free uid from BASE, leased host-wide; 'none' keeps uid 0 without capabilities",
        unset="none",
    ),
    Setting("--max-processes", "scheduler", "max_processes", int, "processes and threads per environment"),
    Setting(
        "--runtime",
        "scheduler",
        "runtime_interpreters",
        _interpreters,
        "the interpreter a runtime runs on (python3.12=/usr/local/bin/python3.12), comma-separated or "
        "repeated; other runtimes run on python3.N from PATH, else on the server's own",
        repeatable=True,
        metavar="RUNTIME=PYTHON",
    ),
    Setting(
        "--strict-runtime",
        "scheduler",
        "strict_runtime",
        _switch,
        "refuse a function whose runtime no interpreter here matches, instead of running it on the server's",
        on_off=True,
    ),
    Setting(
        "--runtime-dir",
        "scheduler",
        "runtime_dir",
        str,
        "where msgspec (the worker's one dependency) is installed, once, for an interpreter without it",
        unset="~/.cache/lambda-scheduler/runtimes",
    ),
    Setting(
        "--state-dir",
        "scheduler",
        "state_dir",
        str,
        "where the fallback isolation keeps each environment's TMPDIR",
        unset="the system temp dir",
    ),
    Setting(
        "--event-retry-delays",
        "server",
        "event_retry_delays_s",
        _floats,
        "comma-separated seconds before each retry of a failed Event invocation",
    ),
    Setting(
        "--event-throttle-backoff",
        "server",
        "event_throttle_backoff_s",
        _floats,
        "first,longest seconds of backoff for a throttled Event invocation",
    ),
    Setting("--event-concurrency", "server", "event_concurrency", int, "Event invocations run at once from the queue"),
    Setting(
        "--data-dir",
        "server",
        "data_dir",
        str,
        "where accepted Event invocations are kept (SQLite, made 0700) and destination records are written; "
        "they survive a restart",
        unset=".lambda-scheduler/ beside the template",
    ),
    Setting(
        "--shared-paths",
        "scheduler",
        "shared_paths",
        _names,
        "comma-separated folders every environment sees as the host does, even inside a hidden one",
    ),
    Setting(
        "--code-store-dir",
        "server",
        "code_store_dir",
        str,
        "where uploaded code is unpacked (a private folder inside)",
        unset="the system temp dir",
    ),
    Setting("--log-level", "server", "log_level", str, f"{'|'.join(LOG_LEVELS)}; info also prints function logs"),
    Setting(
        "--log-dir",
        "server",
        "log_dir",
        str,
        "also write each function's logs here, one file per environment: DIR/FUNCTION/YYYY/MM/DD/[$LATEST]ID",
    ),
    Setting("--metrics", "server", "metrics", _switch, "on|off: Prometheus metrics at GET /metrics"),
    Setting(
        "--watch",
        "server",
        "watch",
        _switch,
        "reload a template function when a file in its code folder or layers changes (its environments "
        "are replaced, as UpdateFunctionCode replaces them), and the template's functions when it changes",
        on_off=True,
    ),
    Setting(
        "--header-timeout",
        "server",
        "header_timeout_s",
        float,
        "seconds a new connection has to send a complete request head (and an upload body may pause)",
    ),
    Setting(
        "--keepalive-timeout", "server", "keepalive_timeout_s", float, "seconds an idle keep-alive connection stays open"
    ),
    Setting(
        "--max-connections",
        "server",
        "max_connections",
        int,
        "open connections at most; more are closed as soon as they are accepted",
    ),
    Setting(
        "--auth",
        "server",
        "auth",
        _auth,
        "none|sigv4: sigv4 accepts only requests signed (AWS Signature Version 4) with one of --credentials; "
        "a --host that is not loopback refuses to start unless --auth is given",
        unset="none on a loopback --host, required on any other",
    ),
    Setting(
        "--credentials",
        "server",
        "credentials",
        _credentials,
        "KEY:SECRET access keys --auth sigv4 accepts, comma-separated or repeated (prefer the variable: "
        "other users can read a command line)",
        repeatable=True,
        secret=True,
    ),
    Setting(
        "--unsigned-metrics",
        "server",
        "unsigned_metrics",
        _switch,
        "on|off: with --auth sigv4, serve GET /metrics without a signature (for Prometheus); "
        "GET /health is always open",
    ),
    Setting(
        "--allowed-hosts",
        "server",
        "allowed_hosts",
        _names,
        "comma-separated Host names to answer besides IP addresses, localhost and --host (*.example.com: "
        "subdomains, *: any); other names are refused, as a DNS-rebinding web page sends them",
    ),
    Setting(
        "--allowed-origins",
        "server",
        "allowed_origins",
        _names,
        "comma-separated web origins (http://localhost:3000) whose pages may call the API, with CORS; "
        "requests from any other Origin are refused",
    ),
    Setting(
        "--cluster",
        "server",
        "cluster",
        str,
        "nats://HOST:PORT of a nats-server -js: nodes share Event invocations (a JetStream stream) "
        "and see each other (GET /cluster); without it the node serves alone with its SQLite store",
        unset="alone",
    ),
    Setting("--node-name", "server", "node_name", str, "this node's name in the cluster", unset="host-pid"),
)


def _shown(value: Any, unset: str) -> str:
    if value is None:
        return unset
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run AWS Lambda Python functions locally, with Lambda's API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "serve",
        help="serve a SAM template's functions over the Lambda API",
        description="Serve a SAM / CloudFormation template's functions over the Lambda REST API, so boto3 and the "
        "AWS CLI work against it with --endpoint-url.",
    )
    run.add_argument(
        "template",
        nargs="?",
        help=f"SAM or CloudFormation template (default: the bundled examples/template.yaml; env: {ENV_PREFIX}TEMPLATE)",
    )
    run.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help=f"values for the template's Parameters (default: their Default; env: {ENV_PREFIX}PARAMETER_OVERRIDES)",
    )
    for setting in SETTINGS:
        _add_setting(run, setting, f"{setting.help} (default: {_shown(setting.default(), setting.unset)}; env: {setting.env})")
    call = commands.add_parser("invoke", help="invoke a function on a running server", description="Invoke a function.")
    call.add_argument("function", help="function name or ARN")
    call.add_argument("payload", nargs="?", default="{}", help="JSON event (default: {})")
    call.add_argument(
        "--endpoint-url",
        default=os.environ.get(ENV_PREFIX + "ENDPOINT_URL", "http://127.0.0.1:9000"),
        help=f"server URL (default: http://127.0.0.1:9000; env: {ENV_PREFIX}ENDPOINT_URL)",
    )
    call.add_argument("--invocation-type", choices=("RequestResponse", "Event", "DryRun"), default="RequestResponse")
    call.add_argument("--log-type", choices=("None", "Tail"), default="None", help="Tail prints the log to stderr")
    load_cli.add_signing(call)  # --credentials, --region: as the harness signs
    listing = commands.add_parser(
        "events",
        help="list the Event invocations of a running server",
        description="List the Event invocations a running server holds, newest first.",
    )
    listing.add_argument(
        "--endpoint-url",
        default=os.environ.get(ENV_PREFIX + "ENDPOINT_URL", "http://127.0.0.1:9000"),
        help=f"server URL (default: http://127.0.0.1:9000; env: {ENV_PREFIX}ENDPOINT_URL)",
    )
    listing.add_argument("--state", choices=[s.value for s in EventState if s is not EventState.RUNNING] + ["running"])
    listing.add_argument("--limit", type=int, default=1000, help="events at most (default: 1000)")
    load_cli.add_signing(listing)
    load = commands.add_parser(
        "load",
        help="load-test any server of Lambda's Invoke API",
        description="Drive a server of Lambda's Invoke API (this one, serverless-offline, ...) in an open or closed "
        "loop; report latency from each request's intended start, cold / warm starts, errors and throttles.",
    )
    load_cli.add_arguments(load)
    runtimes = commands.add_parser(
        "runtimes",
        help="show the interpreter each Python runtime runs on, preparing it",
        description="Show which interpreter each runtime (python3.N) runs on, installing msgspec for an interpreter "
        "that lacks it (ahead of serve, so the server never needs the package index). Exits 1 if a runtime named "
        "here has no interpreter of its own.",
    )
    runtimes.add_argument("runtimes", nargs="*", metavar="RUNTIME", help="runtimes to check (default: all)")
    for setting in SETTINGS:
        if setting.field in _RUNTIME_FIELDS:
            _add_setting(runtimes, setting, f"as for serve (env: {setting.env})")
    return parser


def _add_setting(parser: argparse.ArgumentParser, setting: Setting, text: str) -> None:
    if setting.on_off:
        parser.add_argument(setting.flag, dest=setting.dest, default=None, action="store_const", const="on", help=text)
        return
    parser.add_argument(
        setting.flag,
        dest=setting.dest,
        default=None,
        action="append" if setting.repeatable else "store",
        metavar=setting.metavar or setting.dest.upper(),
        help=text,
    )


_RUNTIME_FIELDS = ("runtime_interpreters", "runtime_dir")


class UsageError(Exception):
    pass


def _value(setting: Setting, given: str | list[str] | None) -> Any:
    if isinstance(given, list):
        given = ",".join(given)  # a repeated flag
    source, text = (setting.flag, given) if given is not None else (setting.env, os.environ.get(setting.env))
    if text is None:
        return dataclasses.MISSING
    try:
        return setting.parse(text)
    except ValueError:
        shown = "(hidden)" if setting.secret else repr(text)
        raise UsageError(f"{source}: cannot read {shown}") from None


def configs(args: argparse.Namespace) -> tuple[SchedulerConfig, ServerConfig]:
    chosen: dict[str, dict[str, Any]] = {"scheduler": {}, "server": {}}
    for setting in SETTINGS:
        value = _value(setting, getattr(args, setting.dest))
        if value is not dataclasses.MISSING:
            chosen[setting.target][setting.field] = value
    try:
        return SchedulerConfig(**chosen["scheduler"]), ServerConfig(**chosen["server"])
    except ConfigError as exc:
        raise _usage(exc) from None


def _usage(exc: ConfigError) -> UsageError:
    """A bad setting, named by its flag."""
    flag = next((s.flag for s in SETTINGS if s.field == exc.field), exc.field)
    return UsageError(f"{flag}: {exc.message.split(': ', 1)[-1]}")


def parameter_overrides(args: argparse.Namespace) -> dict[str, str]:
    items = args.parameter_overrides
    if items is None:
        items = os.environ.get(ENV_PREFIX + "PARAMETER_OVERRIDES", "").split()
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--parameter-overrides: expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def template_path(args: argparse.Namespace) -> Path:
    given = args.template or os.environ.get(ENV_PREFIX + "TEMPLATE")
    if given:
        return Path(given)
    if not BUNDLED_TEMPLATE.is_file():
        raise UsageError(
            f"no TEMPLATE given, and the bundled {BUNDLED_TEMPLATE} is missing (it ships with the sources)"
        )
    return BUNDLED_TEMPLATE


def _ready(functions: Sequence[str]) -> Callable[[str], None]:
    def announce(url: str) -> None:
        # What was logged while starting (a runtime's warning, say) comes before "serving":
        # callers wait for that line and then read the log.
        log_writer.flush_installed()
        print(f"{PROG}: serving {len(functions)} functions ({', '.join(functions)}) at {url}", flush=True)
        print(f"{PROG}: try: aws lambda invoke --endpoint-url {url} --function-name NAME out.json", flush=True)

    return announce


def run_serve(args: argparse.Namespace) -> int:
    scheduler_config, server_config = configs(args)
    # Before anything is loaded or bound: an exposed server without authentication never starts.
    problem = server_config.exposure_problem()
    if problem is not None:
        raise UsageError(problem)
    setup_logging(server_config.log_level)
    path, parameters = template_path(args), parameter_overrides(args)

    def load() -> Template:
        return load_template(path, parameters=parameters, settings=scheduler_config)

    try:
        template = load()
    except TemplateError as exc:
        raise UsageError(f"template: {exc}") from None
    names = [f.name for f in template.functions]
    try:
        uvloop.run(serve(template, scheduler_config, server_config, _ready(names), load))
    except RuntimeUnavailable as exc:  # --strict-runtime, and a runtime with no interpreter here
        refused = ", ".join(f.name for f in template.functions if f.runtime == exc.runtime)
        raise UsageError(f"template: function {refused}: {exc.message}") from None
    except OSError as exc:
        raise UsageError(f"cannot serve on {server_config.host}:{server_config.port}: {exc.strerror or exc}") from None
    except ConfigError as exc:
        raise _usage(exc) from None
    return 0


def _request(args: argparse.Namespace, method: str, url: str, body: bytes, headers: dict[str, str]) -> urllib.request.Request:
    credential = load_cli.credential(args)
    if credential is not None:
        from .sigv4 import Signer  # botocore: only when signing

        headers = Signer(credential.access_key, credential.secret_key, args.region).sign(method, url, body, headers)
    return urllib.request.Request(url, data=body if method == "POST" else None, method=method, headers=headers)


def run_runtimes(args: argparse.Namespace) -> int:
    chosen = {}
    for setting in SETTINGS:
        if setting.field in _RUNTIME_FIELDS:
            value = _value(setting, getattr(args, setting.dest))
            if value is not dataclasses.MISSING:
                chosen[setting.field] = value
    try:
        return runtimes_cli.report(SchedulerConfig(**chosen), args.runtimes)
    except ConfigError as exc:
        raise _usage(exc) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_events(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (("state", args.state), ("limit", args.limit)) if v is not None})
    url = f"{args.endpoint_url.rstrip('/')}/events?{query}"
    try:
        with urllib.request.urlopen(_request(args, "GET", url, b"", {})) as response:
            listed = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"{PROG}: {exc.headers.get('x-amzn-ErrorType', exc.code)}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach {args.endpoint_url}: {exc.reason}") from None
    print(f"{'REQUEST ID':36}  {'STATE':13}  {'ATTEMPTS':>8}  {'RECEIVED (UTC)':23}  FUNCTION")
    for event in listed["Events"]:
        received = timestamp(event["ReceivedAt"])
        print(f"{event['RequestId']:36}  {event['State']:13}  {event['Attempts']:>8}  {received:23}  {event['FunctionName']}")
    return 0


def run_invoke(args: argparse.Namespace) -> int:
    url = f"{args.endpoint_url.rstrip('/')}/2015-03-31/functions/{args.function}/invocations"
    body = args.payload.encode()
    headers = {"X-Amz-Invocation-Type": args.invocation_type, "X-Amz-Log-Type": args.log_type}
    request = _request(args, "POST", url, body, headers)
    try:
        with urllib.request.urlopen(request) as response:
            body, headers = response.read(), response.headers
    except urllib.error.HTTPError as exc:
        print(
            f"{PROG}: {exc.headers.get('x-amzn-ErrorType', exc.code)}: {exc.read().decode(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach {args.endpoint_url}: {exc.reason}") from None
    if headers.get("X-Amz-Log-Result"):
        sys.stderr.write(base64.b64decode(headers["X-Amz-Log-Result"]).decode(errors="replace"))
    if body:
        print(body.decode(errors="replace"))
    return 1 if headers.get("X-Amz-Function-Error") else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return run_serve(args)
        if args.command == "load":
            return load_cli.run(args)
        if args.command == "events":
            return run_events(args)
        if args.command == "runtimes":
            return run_runtimes(args)
        return run_invoke(args)
    except (UsageError, load_cli.LoadUsageError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
