"""Typed, validated settings: one function's Lambda configuration, and the scheduler's own.

Every bound is Lambda's; a bad value raises :class:`ConfigError`
naming the field and the bound, at construction, so a bad configuration never reaches an
environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, UnsupportedRuntime
from .logconfig import LoggingConfig, TracingMode, checked_enum
from .snapstart import SnapStartApplyOn, supports_snapstart, unsupported_message


@dataclass(frozen=True, slots=True)
class Bound:
    """One of Lambda's numeric bounds, with the member name its API's validation messages use
    ("Value '1200' at 'timeout' failed to satisfy constraint: ...")."""

    member: str
    low: int
    high: int


# Lambda's bounds: the one table the API, the template reader and FunctionConfig all check.
MEMORY = Bound("memorySize", 128, 10_240)
TIMEOUT = Bound("timeout", 1, 900)
EPHEMERAL_STORAGE = Bound("ephemeralStorage.size", 512, 10_240)

MIN_MEMORY_MB = MEMORY.low
MAX_MEMORY_MB = MEMORY.high
MAX_TIMEOUT_S = TIMEOUT.high
MIN_EPHEMERAL_MB = EPHEMERAL_STORAGE.low
MAX_EPHEMERAL_MB = EPHEMERAL_STORAGE.high
MAX_HANDLER = 128  # characters
MAX_FUNCTION_NAME = 64  # characters (an ARN naming it may be longer)
# Lambda measures a function's variables as their compact JSON object, in UTF-8 bytes.
MAX_ENVIRONMENT_BYTES = 4096
# Lambda's limit on an Init that runs ahead of any invocation (a provisioned environment's, a
# SnapStart snapshot's with its before-snapshot hooks): this, or the function timeout if longer.
AHEAD_INIT_LIMIT_S = 130.0


KEEP_ALIVE_POLICIES = ("fixed", "hybrid")  # keepalive.make_policy's names

_NAME = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_FUNCTION_NAME}}}$")
_ENV_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RUNTIME = re.compile(r"^python3\.\d{1,2}$")

# The Python runtimes Lambda lets a function be created with today: python3.9 is deprecated
# (no more patches) but creating one is still allowed, python3.14 is the newest. Any other
# python3.N is refused with Lambda's text for a runtime it no longer accepts.
SUPPORTED_RUNTIMES = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14")

# Variables Lambda sets itself and refuses in a function's configuration.
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


def _int_between(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionConfig:
    """One function's configuration, with Lambda's names mapped to Python keywords.

    ``timeout_s`` accepts fractions of a second through the Python API so tests and benchmarks
    can exercise deadlines quickly; the HTTP API keeps Lambda's whole seconds (1–900).
    """

    name: str
    handler: str
    code_dir: str | os.PathLike[str]
    runtime: str = "python3.11"
    memory_mb: int = 128
    timeout_s: float = 3
    ephemeral_storage_mb: int = 512
    environment: Mapping[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    layers: tuple[str | os.PathLike[str], ...] = ()
    description: str = ""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    tracing: TracingMode = TracingMode.PASS_THROUGH
    snapstart: SnapStartApplyOn = SnapStartApplyOn.NONE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError("name", f"must match [A-Za-z0-9_-]{{1,64}}, got {self.name!r}")
        if not isinstance(self.handler, str) or not self.handler or len(self.handler) > MAX_HANDLER or any(
            c.isspace() for c in self.handler
        ):
            raise ConfigError("handler", f"must be 1-{MAX_HANDLER} characters without spaces, got {self.handler!r}")
        if not isinstance(self.runtime, str) or not _RUNTIME.match(self.runtime):
            raise ConfigError(
                "runtime", f"must be a python3.N runtime (this scheduler runs Python), got {self.runtime!r}"
            )
        if self.runtime not in SUPPORTED_RUNTIMES:
            raise UnsupportedRuntime(self.runtime)
        _int_between("memory_mb", self.memory_mb, MIN_MEMORY_MB, MAX_MEMORY_MB)
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int | float):
            raise ConfigError("timeout_s", f"must be a number of seconds, got {self.timeout_s!r}")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ConfigError("timeout_s", f"must be greater than 0 and at most {MAX_TIMEOUT_S}, got {self.timeout_s}")
        _int_between("ephemeral_storage_mb", self.ephemeral_storage_mb, MIN_EPHEMERAL_MB, MAX_EPHEMERAL_MB)
        self._check_concurrency()
        code_dir = Path(self.code_dir).resolve()
        if not code_dir.is_dir():
            raise ConfigError("code_dir", f"must be an existing directory, got {str(self.code_dir)!r}")
        object.__setattr__(self, "code_dir", code_dir)
        layers = tuple(Path(p).resolve() for p in self.layers)
        for layer in layers:
            if not layer.is_dir():
                raise ConfigError("layers", f"must be existing directories, got {str(layer)!r}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "environment", _check_environment(self.environment))
        if not isinstance(self.logging, LoggingConfig):
            raise ConfigError("logging", f"must be a LoggingConfig, got {self.logging!r}")
        object.__setattr__(self, "tracing", checked_enum("tracing", TracingMode, self.tracing))
        object.__setattr__(self, "snapstart", checked_enum("snapstart", SnapStartApplyOn, self.snapstart))
        if self.snapstart is SnapStartApplyOn.PUBLISHED_VERSIONS and not supports_snapstart(self.runtime):
            message = unsupported_message(self.runtime)
            raise ConfigError("snapstart", message, api_message=message)

    def _check_concurrency(self) -> None:
        if self.reserved_concurrency is not None:
            _int_between("reserved_concurrency", self.reserved_concurrency, 0, 1_000_000)
        _int_between("provisioned_concurrency", self.provisioned_concurrency, 0, 1_000_000)
        if self.reserved_concurrency is not None and self.provisioned_concurrency > self.reserved_concurrency:
            raise ConfigError(
                "provisioned_concurrency",
                f"must not exceed reserved_concurrency ({self.reserved_concurrency}), got "
                f"{self.provisioned_concurrency}",
            )

    @property
    def task_root(self) -> Path:
        assert isinstance(self.code_dir, Path)
        return self.code_dir

    def replace(self, **changes: Any) -> FunctionConfig:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)


def _check_environment(env: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(env, Mapping):
        raise ConfigError("environment", f"must be a mapping of strings, got {type(env).__name__}")
    checked: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise ConfigError("environment", f"variable names must match [a-zA-Z][a-zA-Z0-9_]*, got {key!r}")
        if key in RESERVED_ENV_KEYS:
            raise ConfigError(
                "environment",
                f"{key} is reserved by Lambda and cannot be set",
                api_message="Lambda was unable to configure your environment variables because the environment "
                "variables you have provided contains reserved keys that are currently not supported for "
                f"modification. Reserved keys used in this request: {key}",
            )
        if not isinstance(value, str):
            raise ConfigError("environment", f"value of {key} must be a string, got {type(value).__name__}")
        checked[key] = value
    check_environment_size(checked)
    return checked


def check_environment_size(variables: Mapping[str, Any]) -> None:
    """Lambda's 4 KB limit, measured as it measures it: the variables as a compact JSON object."""
    measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
    size = len(measured.encode())
    if size > MAX_ENVIRONMENT_BYTES:
        raise ConfigError(
            "environment",
            f"must total at most {MAX_ENVIRONMENT_BYTES} bytes as a compact JSON object, got {size}",
            api_message="Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {measured}",
        )


def _paths(name: str, value: object) -> tuple[str, ...]:
    """Absolute folder paths (relative ones taken from the working directory)."""
    if isinstance(value, (str, os.PathLike)) or not isinstance(value, Iterable):
        raise ConfigError(name, f"must be a sequence of paths, got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
            raise ConfigError(name, f"must hold paths, got {item!r}")
        out.append(os.path.abspath(os.fspath(item)))
    return tuple(out)


def _interpreters(value: object) -> tuple[tuple[str, str], ...]:
    """``runtime_interpreters`` as sorted (runtime, absolute path) pairs; a mapping is accepted."""
    items = value.items() if isinstance(value, Mapping) else value
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise ConfigError("runtime_interpreters", f"must be (runtime, path) pairs, got {value!r}")
    out: dict[str, str] = {}
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2 and all(isinstance(v, str) and v for v in item)):
            raise ConfigError("runtime_interpreters", f"expected RUNTIME=PATH, got {item!r}")
        runtime, path = item
        if runtime not in SUPPORTED_RUNTIMES:
            raise ConfigError("runtime_interpreters", f"{runtime} is not one of {', '.join(SUPPORTED_RUNTIMES)}")
        out[runtime] = os.path.abspath(path)
    return tuple(sorted(out.items()))


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
    """Settings of the scheduler as a whole. Defaults are Lambda's where Lambda has one."""

    account_concurrency: int = 1000
    # Lambda keeps at least 100 unreserved; a smaller account limit lowers it to fit.
    min_unreserved_concurrency: int = 100
    # Scaling rate: at most `scale_limit` new environments per function per `scale_window_s`,
    # refilled continuously.
    scale_limit: int = 1000
    scale_window_s: float = 10.0
    idle_ttl_s: float = 600.0
    # How long idle environments stay warm (keepalive.py): "fixed", idle_ttl_s for every one;
    # "hybrid", a window learnt from each function's inter-arrival times, which may retire an
    # environment at once and pre-warm a new one before the next call is due.
    keep_alive: Literal["fixed", "hybrid"] = "fixed"
    max_lifetime_s: float = 7200.0
    init_timeout_s: float = 10.0
    shutdown_timeout_s: float = 2.0
    drain_timeout_s: float = 30.0
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # Modules imported once in the zygote so every environment starts with them loaded.
    preload: tuple[str, ...] = ()
    # Per-invocation log text kept in memory (the tail survives; older output is dropped).
    max_log_bytes: int = 1 << 20
    # The server's own interpreter: its zygote is started with the scheduler, and it runs every
    # function whose runtime it matches, or that no interpreter on this host matches.
    python: str = field(default_factory=lambda: sys.executable)
    # Interpreters for runtimes, beyond what PATH offers (python3.N): ((runtime, path), ...).
    runtime_interpreters: tuple[tuple[str, str], ...] = ()
    # A function whose runtime no interpreter here matches is refused instead of run on `python`.
    strict_runtime: bool = False
    # Where the worker's own dependency (msgspec) is installed for an interpreter that lacks
    # it, one folder per interpreter (default: the user's cache directory).
    runtime_dir: str | None = None
    # Isolation: "auto" uses the strongest mechanism the host allows for each resource
    # (cgroups, a mount namespace, a dropped uid); "fallback" forces the unprivileged ones.
    isolation: Literal["auto", "fallback"] = "auto"
    # Stop (SIGSTOP) idle environments so their background threads do not run, as on Lambda,
    # once they have been idle for freeze_delay_s (0: at once; an environment reused sooner,
    # as a busy one is, then never pays the two signals per invocation).
    freeze_idle: bool = True
    freeze_delay_s: float = 0.01
    # When running as root, each function's environments run as uid base + n (None: never).
    sandbox_uid_base: int | None = 50_000
    # Processes and threads per environment (Lambda's limit is 1,024).
    max_processes: int = 1024
    # Where the fallback's per-environment TMPDIRs go (default: the system temp dir).
    state_dir: str | None = None
    # The filesystem view of environments (with a mount namespace; README "Security"). Folders
    # hidden from every environment even when world-readable, but for what a function needs
    # beneath them: the server adds its template's folder. Every function's code and layers
    # and the scheduler's own source checkout are hidden from the others without being listed.
    private_paths: tuple[str, ...] = ()
    # Folders every environment sees as the host does (writable where modes allow), even inside
    # a hidden one: where functions exchange files with the host (the tests' shared folder).
    shared_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _int_between("account_concurrency", self.account_concurrency, 1, 1_000_000)
        _int_between("min_unreserved_concurrency", self.min_unreserved_concurrency, 0, 1_000_000)
        _int_between("scale_limit", self.scale_limit, 1, 1_000_000)
        for name in ("scale_window_s", "idle_ttl_s", "max_lifetime_s", "init_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be greater than 0, got {getattr(self, name)}")
        for name in ("shutdown_timeout_s", "drain_timeout_s", "freeze_delay_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(name, f"must be at least 0, got {getattr(self, name)}")
        _int_between("max_log_bytes", self.max_log_bytes, 4096, 1 << 30)
        if self.keep_alive not in KEEP_ALIVE_POLICIES:
            raise ConfigError("keep_alive", f"must be 'fixed' or 'hybrid', got {self.keep_alive!r}")
        if self.isolation not in ("auto", "fallback"):
            raise ConfigError("isolation", f"must be 'auto' or 'fallback', got {self.isolation!r}")
        _int_between("max_processes", self.max_processes, 8, 1 << 22)
        if self.sandbox_uid_base is not None:
            _int_between("sandbox_uid_base", self.sandbox_uid_base, 1, (1 << 31) - 1 - 100_000)
        for name in ("private_paths", "shared_paths"):
            object.__setattr__(self, name, _paths(name, getattr(self, name)))
        object.__setattr__(self, "runtime_interpreters", _interpreters(self.runtime_interpreters))
        if not isinstance(self.strict_runtime, bool):
            raise ConfigError("strict_runtime", f"must be true or false, got {self.strict_runtime!r}")
        if not re.fullmatch(r"\d{12}", self.account_id):
            raise ConfigError("account_id", f"must be 12 digits, got {self.account_id!r}")

    @property
    def unreserved_floor(self) -> int:
        return min(self.min_unreserved_concurrency, self.account_concurrency)

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def replace(self, **changes: Any) -> SchedulerConfig:
        return dataclasses.replace(self, **changes)


LOG_LEVELS = ("debug", "info", "warning", "error")

# Who may call the HTTP API (README "Security"). "none": anyone who reaches the port and passes
# the browser guard (api/guard.py); "sigv4": only requests signed with a known access key
# (api/auth.py).
AuthMode = Literal["none", "sigv4"]
AUTH_MODES: tuple[AuthMode, ...] = ("none", "sigv4")

# An access key id becomes part of the SigV4 credential scope (KEY/date/region/service/...),
# so it cannot hold "/" or spaces; AWS's own are 16-128 upper-case letters and digits.
_ACCESS_KEY = re.compile(r"^[A-Za-z0-9_.+=@-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Credential:
    """One access key the server accepts with ``auth="sigv4"``; the secret stays out of repr,
    so a logged configuration never shows it."""

    access_key: str
    secret_key: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.access_key, str) or not _ACCESS_KEY.match(self.access_key):
            raise ConfigError("credentials", "an access key id must be 1-128 letters, digits or _.+=@- characters")
        if not isinstance(self.secret_key, str) or not self.secret_key or any(c.isspace() for c in self.secret_key):
            raise ConfigError("credentials", f"the secret of {self.access_key} must be non-empty, without spaces")


def parse_credentials(text: str) -> tuple[Credential, ...]:
    """``KEY:SECRET[,KEY:SECRET...]`` (the secret may contain ":", not ",")."""
    found = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, secret = item.partition(":")
        if not sep:
            raise ConfigError("credentials", "expected KEY:SECRET")
        found.append(Credential(key, secret))
    return tuple(found)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine. Only ``localhost`` and
    loopback addresses count: other names are not resolved (they may point anywhere)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+$")


def _host_names(values: tuple[str, ...]) -> tuple[str, ...]:
    names = []
    for value in values:
        name = value.strip().lower().rstrip(".")
        if name == "*" or (name.startswith("*.") and len(name) > 2):
            names.append(name)
            continue
        if not name or any(c in name for c in "/ *@") or (":" in name and not name.startswith("[")):
            raise ConfigError(
                "allowed_hosts", f"expected host names without scheme or port (any port is accepted), got {value!r}"
            )
        names.append(name)
    return tuple(names)


def _origins(values: tuple[str, ...]) -> tuple[str, ...]:
    origins = []
    for value in values:
        origin = value.strip().lower().rstrip("/")
        if origin in ("*", "null"):
            raise ConfigError(
                "allowed_origins", f"{origin!r} would let any web page drive the server; list each origin instead"
            )
        if not _ORIGIN.match(origin):
            raise ConfigError("allowed_origins", f"expected origins like http://localhost:3000, got {value!r}")
        origins.append(origin)
    return tuple(origins)


_CLUSTER_URL = re.compile(r"^(nats|tls)://[^\s/]+(:\d+)?/?(,(nats|tls)://[^\s/]+(:\d+)?/?)*$")
# A node name is a key in a NATS KV bucket and part of subjects: no dots, no wildcards.
_NODE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Settings of the HTTP server (``lambda-scheduler serve``) around a Scheduler.

    The event retry delays default to Lambda's (about 1 minute, then about 2 minutes, for a
    function error or timeout; 1 s doubling to 5 minutes for a throttle);
    tests shorten them.
    """

    host: str = "127.0.0.1"
    port: int = 9000
    # Uploaded code (CreateFunction / UpdateFunctionCode) is unpacked into a private folder
    # made inside this directory for the life of the server; None means the system temp dir.
    code_store_dir: str | os.PathLike[str] | None = None
    # Where accepted Event invocations are kept (an SQLite database, WAL mode) and destination
    # records for services that do not exist locally are written. ``serve`` defaults to
    # ``.lambda-scheduler/`` beside the template (as ``sam`` keeps ``.aws-sam/``); for
    # ``init_app``, None keeps events in memory.
    data_dir: str | os.PathLike[str] | None = None
    # Delay before the 1st, 2nd, ... retry of a failed Event invocation; the last repeats.
    event_retry_delays_s: tuple[float, ...] = (60.0, 120.0)
    event_throttle_backoff_s: tuple[float, float] = (1.0, 300.0)
    # Event invocations run from the queue at once, at most (each still passes admission).
    event_concurrency: int = 100
    log_level: str = "info"
    # Each function's logs (START … REPORT, and output between invocations) are also written
    # here, one file per environment: <log_dir>/<function>/YYYY/MM/DD/[$LATEST]<id>.
    log_dir: str | os.PathLike[str] | None = None
    # GET /metrics and the observer that counts for it.
    metrics: bool = True
    # serve --watch: a change in a template function's code folder or layers replaces its
    # environments (watch.py); a changed template is applied function by function where it can.
    watch: bool = False
    # Bounded input (README "Security"): a connection must send a complete request head this
    # soon after it opens (slowloris defence), and an upload body may not pause for longer;
    # an idle keep-alive connection is closed after keepalive_timeout_s (longer than clients
    # keep idle connections, so none is closed just as a client reuses it); connections over
    # max_connections are closed as soon as they are accepted.
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 1024
    # Who may call the API (README "Security"). None: "none" while the server binds a loopback
    # address; serve() refuses any other address unless auth is chosen explicitly, so the
    # default can never expose an unauthenticated server by accident.
    auth: AuthMode | None = None
    credentials: tuple[Credential, ...] = ()
    # With sigv4, GET /metrics without a signature too (a Prometheus scraper cannot sign).
    # GET /health is always open: load balancers and readiness probes cannot sign either.
    unsigned_metrics: bool = False
    # Host names the server answers to, beyond IP addresses, localhost and --host itself
    # (api/guard.py: a foreign name is how a DNS-rebinding page reaches a local port).
    # "*.example.com" matches its subdomains; "*" any name.
    allowed_hosts: tuple[str, ...] = ()
    # Web origins (scheme://host[:port]) whose pages may call the API, answered with CORS.
    allowed_origins: tuple[str, ...] = ()
    # Cluster mode (scheduler/cluster/): the NATS server (JetStream enabled) through which
    # nodes share Event invocations and heartbeats; None serves alone, with the SQLite store.
    cluster: str | None = None
    # This node's name in the cluster (heartbeats, GET /cluster); None: host name and pid.
    node_name: str | None = None

    def __post_init__(self) -> None:
        _int_between("port", self.port, 0, 65535)
        if self.cluster is not None and not _CLUSTER_URL.match(self.cluster):
            raise ConfigError("cluster", f"expected nats://HOST:PORT (or tls://), got {self.cluster!r}")
        if self.node_name is not None and not _NODE_NAME.match(self.node_name):
            raise ConfigError("node_name", f"must be 1-64 letters, digits, '-' or '_', got {self.node_name!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("host", f"must be a host name or address, got {self.host!r}")
        delays = tuple(self.event_retry_delays_s)
        if not delays or any(not isinstance(d, int | float) or d < 0 for d in delays):
            raise ConfigError("event_retry_delays_s", f"must be one or more delays of at least 0 s, got {delays!r}")
        object.__setattr__(self, "event_retry_delays_s", delays)
        backoff = tuple(self.event_throttle_backoff_s)
        if len(backoff) != 2 or not 0 < backoff[0] <= backoff[1]:
            raise ConfigError(
                "event_throttle_backoff_s", f"must be (first, longest) with 0 < first <= longest, got {backoff!r}"
            )
        object.__setattr__(self, "event_throttle_backoff_s", backoff)
        _int_between("event_concurrency", self.event_concurrency, 1, 100_000)
        if self.log_level not in LOG_LEVELS:
            raise ConfigError("log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        for name in ("metrics", "watch"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        for name in ("header_timeout_s", "keepalive_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
                raise ConfigError(name, f"must be a number of seconds greater than 0 and at most 86400, got {value!r}")
        _int_between("max_connections", self.max_connections, 1, 1_000_000)
        self._check_access()

    def _check_access(self) -> None:
        if self.auth is not None and self.auth not in AUTH_MODES:
            raise ConfigError("auth", f"must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        credentials = tuple(self.credentials)
        if any(not isinstance(c, Credential) for c in credentials):
            raise ConfigError("credentials", "must be Credential(access_key, secret_key) values")
        keys = [c.access_key for c in credentials]
        if len(set(keys)) != len(keys):
            raise ConfigError("credentials", "an access key id is given twice")
        object.__setattr__(self, "credentials", credentials)
        if self.auth == "sigv4" and not credentials:
            raise ConfigError("credentials", "--auth sigv4 needs at least one KEY:SECRET")
        if credentials and self.auth != "sigv4":
            raise ConfigError("credentials", "are only checked with --auth sigv4; add it (or drop the credentials)")
        if not isinstance(self.unsigned_metrics, bool):
            raise ConfigError("unsigned_metrics", f"must be true or false, got {self.unsigned_metrics!r}")
        object.__setattr__(self, "allowed_hosts", _host_names(tuple(self.allowed_hosts)))
        object.__setattr__(self, "allowed_origins", _origins(tuple(self.allowed_origins)))

    @property
    def auth_mode(self) -> AuthMode:
        return self.auth or "none"

    def exposure_problem(self) -> str | None:
        """Why serving with these settings must not start, if it must not: an address other
        than loopback with no authentication that was asked for."""
        if self.auth is not None or is_loopback(self.host):
            return None
        return (
            f"--host {self.host} is not a loopback address: anyone who can reach the port could create "
            "functions and run code on this machine. Give --auth sigv4 with --credentials KEY:SECRET "
            "(or LAMBDA_SCHEDULER_AUTH / LAMBDA_SCHEDULER_CREDENTIALS), or --auth none to serve without "
            "authentication anyway."
        )

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)
