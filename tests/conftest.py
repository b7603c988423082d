from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.config import Config

from scheduler import FunctionConfig, Scheduler
from scheduler.api import init_app
from scheduler.config import ServerConfig
from scheduler.events import EventInvokeConfig

from .procs import cgroup_leftovers, wait_gone, zygote_family

# Environments get a private /tmp (and /var/tmp, /dev/shm), as on Lambda: files a test shares
# with a handler must live elsewhere, so the tests' temporary directories do — in the
# checkout, or in the user's cache directory when the checkout itself is under /tmp.
_PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")


def _test_tmp() -> Path:
    # Outside the checkout, not under a home folder either: a 0700 home is covered in every
    # environment's view, so root uses a system folder that other users can traverse.
    fallback = (
        Path("/var/lib/lambda-scheduler-tests")
        if os.geteuid() == 0
        else Path.home() / ".cache" / "lambda-scheduler-tests"
    )
    for candidate in (Path(__file__).resolve().parent.parent / ".tmp", fallback):
        if not any(str(candidate) == p or str(candidate).startswith(p + "/") for p in _PRIVATE):
            candidate.mkdir(parents=True, exist_ok=True)
            return candidate
    raise RuntimeError("no directory outside /tmp for the tests' temporary files")


os.environ["TMPDIR"] = str(_test_tmp())
tempfile.tempdir = None

FUNCTIONS = Path(__file__).parent / "functions"

# Short limits so the fault matrix runs in seconds; behaviour is the same as with Lambda's.
FAST = {"init_timeout_s": 2.0, "shutdown_timeout_s": 0.5, "drain_timeout_s": 5.0}


# Files a test shares with handlers: pytest's own temporary directories live in a 0700
# folder, which environments (another uid, no capability) can neither search nor see.
_SHARED = _test_tmp() / "shared"
# ...and inside the checkout, which environments do not see (it is the scheduler's source):
# made a shared path of every scheduler the fixtures start (SchedulerConfig.shared_paths).
SHARED_PATHS = (str(_SHARED),)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A fresh directory that the unprivileged users handlers run as can reach and write
    (when the tests run as root, each function gets its own uid); removed after the test."""
    _SHARED.mkdir(exist_ok=True)
    _SHARED.chmod(0o711)  # reachable by name, not listable
    path = Path(tempfile.mkdtemp(prefix="t-", dir=_SHARED))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fn(name: str, handler: str, **kwargs: Any) -> FunctionConfig:
    return FunctionConfig(name=name, handler=handler, code_dir=kwargs.pop("code_dir", FUNCTIONS), **kwargs)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Tests run on uvloop, the loop the server uses."""
    return {"uvloop": uvloop.new_event_loop}


MakeScheduler = Callable[..., Awaitable[Scheduler]]


async def wait_provisioned(s: Scheduler, name: str, timeout: float = 30.0) -> None:
    """Until no provisioned environment of ``name`` is in Init (an event, not a poll)."""
    await asyncio.wait_for(asyncio.shield(s.status(name).provisioned_settled), timeout)


async def _bounded(step: Awaitable[None], timeout: float, what: Callable[[], str]) -> None:
    """A teardown step under its own limit, failing with what was still in progress: a hang
    on an idle uvloop loop is not interrupted by pytest-timeout's signal, so it is bounded here
    (and the thread method, in pyproject.toml, ends the run as a last resort)."""
    try:
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        pytest.fail(f"teardown did not finish in {timeout:.0f} s: {what()}")


def _environments(s: Scheduler) -> list[str]:
    return [
        repr(env) + f" stop_reason={env.stop_reason!r}" for name in s.functions for env in s.environments(name)
    ]


@pytest.fixture
async def make_scheduler() -> AsyncIterator[MakeScheduler]:
    """Start schedulers for a test; stop them after it and check nothing is left running."""
    created: list[Scheduler] = []

    async def make(*functions: FunctionConfig, **settings: Any) -> Scheduler:
        s = Scheduler(functions, **{**FAST, "shared_paths": SHARED_PATHS, **settings})
        created.append(s)
        await s.start()
        return s

    yield make
    for s in created:
        await _bounded(s.stop(), 30.0, lambda s=s: f"Scheduler.stop: environments {_environments(s)}")
    leftover = wait_gone(zygote_family(), timeout=5.0)
    assert not leftover, f"processes left behind: {sorted(leftover)}"
    assert not cgroup_leftovers(), f"cgroups left behind: {cgroup_leftovers()}"


# --- the HTTP API: a real server on an ephemeral port, driven with boto3 ----------------------

# Event retries in tens of milliseconds instead of minutes.
FAST_EVENTS: dict[str, Any] = {"event_retry_delays_s": (0.02, 0.04), "event_throttle_backoff_s": (0.02, 0.1)}

_boto = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def lambda_client(url: str, *, validate: bool = True, read_timeout: float = 30) -> Any:
    """boto3's Lambda client for a local server: no retries, a read timeout, optionally without
    client-side parameter validation (to send what botocore would refuse)."""
    config = Config(
        retries={"max_attempts": 0}, read_timeout=read_timeout, connect_timeout=5, parameter_validation=validate
    )
    return _boto.client("lambda", endpoint_url=url, config=config)


async def aws(method: Callable[..., Any], **kwargs: Any) -> Any:
    """Call boto3 in a thread: the server runs on this test's event loop. An invoke's Payload
    is read there too and returned as bytes."""

    def call() -> Any:
        response = method(**kwargs)
        if isinstance(response, dict) and hasattr(response.get("Payload"), "read"):
            response["Payload"] = response["Payload"].read()
        return response

    return await asyncio.to_thread(call)


def cli_environment(home: Path) -> dict[str, str]:
    """The environment the AWS CLI runs with in tests: test credentials, no retries, and no
    configuration of the machine's user."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": str(home / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
    }


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a state the test cannot be told about directly, up to a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@dataclass
class Served:
    scheduler: Scheduler
    app: web.Application
    url: str

    def client(self, **kwargs: Any) -> Any:
        return lambda_client(self.url, **kwargs)


MakeServer = Callable[..., Awaitable[Served]]


@pytest.fixture
async def make_server(make_scheduler: MakeScheduler, tmp_path: Path) -> AsyncIterator[MakeServer]:
    """Serve schedulers over the Lambda API on 127.0.0.1, an ephemeral port each; stop them
    (and their schedulers) after the test."""
    servers: list[TestServer] = []

    async def make(
        *functions: FunctionConfig,
        server_config: ServerConfig | None = None,
        event_configs: Mapping[str, EventInvokeConfig] | None = None,
        **settings: Any,
    ) -> Served:
        s = await make_scheduler(*functions, **settings)
        config = server_config or ServerConfig(code_store_dir=tmp_path / "code-store", **FAST_EVENTS)
        app = init_app(s, config, event_configs=event_configs)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Served(s, app, str(server.make_url("")).rstrip("/"))

    yield make
    for server in servers:
        await _bounded(server.close(), 30.0, lambda: "closing the test server")
