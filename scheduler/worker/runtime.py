"""The runtime loop inside one execution environment: Init once, then one invoke at a time.

    scheduler ──Invoke──► read_frame ─► handler(event, context) ─► Response | FunctionError ──►

Blocking I/O on two pipes is the fastest way to serve one request at a time; there is no event
loop here. The scheduler enforces every deadline from outside by killing this process, so
nothing here needs a timer. A crash (exception outside the handler, SystemExit, a signal)
ends the process; the scheduler turns the exit status into ``Runtime.ExitError``.
"""

from __future__ import annotations

import importlib
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import msgspec

from ..engine import protocol
from ..engine.protocol import MAX_PAYLOAD, FunctionError, InitFailed, Invoke, OutOfMemory, Ready, Response
from . import faults, logsetup, marshal
from .context import FunctionInfo, LambdaContext
from .faults import Fault

Handler = Callable[[Any, LambdaContext], Any]

_RUNTIME_FILE = __file__
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(protocol.ToEnvironment)

# The control fds, visible to tests that need to break the protocol on purpose.
control_in_fd = -1
control_out_fd = -1
# Set at spawn in the fallback isolation, where RLIMIT_AS stands in for the memory limit: a
# MemoryError then means "over the memory size", which kills the environment as on Lambda.
oom_on_memory_error = False


def load_handler(spec: str) -> Handler:
    """Import ``module.function`` (dotted modules allowed) the way the Python runtime does."""
    module_name, sep, function_name = spec.rpartition(".")
    if not sep or not module_name or not function_name:
        raise Fault(faults.MALFORMED_HANDLER, f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(faults.BUILT_IN_CONFLICT, f"Cannot use built-in module {module_name} as a handler module")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise Fault(faults.IMPORT_MODULE_ERROR, f"Unable to import module '{module_name}': {exc}") from None
    except SyntaxError as exc:
        stack = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(faults.SYNTAX_ERROR, f"Syntax error in module '{module_name}': {exc}", stack) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault(faults.HANDLER_NOT_FOUND, f"Handler '{function_name}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


def _max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def send(msg: msgspec.Struct) -> None:
    _write_all(control_out_fd, protocol.frame(_encoder, msg))


class _FrameReader:
    """Blocking reads of whole frames; one ``os.read`` per frame in the common case."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._splitter = protocol.FrameSplitter(_decoder)
        self._ready: list[object] = []

    def next(self) -> Invoke | None:
        while not self._ready:
            data = os.read(self._fd, 1 << 16)
            if not data:
                return None
            self._ready = self._splitter.feed(data)
        return self._ready.pop(0)  # type: ignore[return-value]


def _exit(code: int) -> NoReturn:
    logsetup.flush()
    os._exit(code)


def _out_of_memory() -> NoReturn:
    """The fallback memory limit was hit: say so, then die the way an OOM kill does."""
    try:
        send(OutOfMemory(_max_rss_kb()))
    finally:
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # not reached


def _system_exit(exc: SystemExit) -> NoReturn:
    """sys.exit() in user code ends the runtime with that status, as it does on Lambda."""
    if exc.code is None or isinstance(exc.code, int):
        _exit(exc.code or 0)
    sys.stderr.write(f"{exc.code}\n")
    _exit(1)


def _init(handler_spec: str, then: Callable[[], None] | None = None) -> Handler:
    """Import the handler (and run ``then``: the before-snapshot hooks); Ready, or the error
    as InitFailed and exit."""
    try:
        handler = load_handler(handler_spec)
        if then is not None:
            then()
    except Fault as fault:
        body = faults.fault_body(fault)
    except SystemExit as exc:
        _system_exit(exc)
    except MemoryError as exc:
        if oom_on_memory_error:
            _out_of_memory()
        body = faults.exception_body(exc, _RUNTIME_FILE)
    except Exception as exc:  # noqa: BLE001 - any import-time error is an Init error
        body = faults.exception_body(exc, _RUNTIME_FILE)
    else:
        send(Ready(_max_rss_kb()))
        return handler
    _init_failed(body)


def _init_failed(body: dict[str, Any]) -> NoReturn:
    sys.stdout.write(logsetup.error_record(body))
    send(InitFailed(str(body["errorType"]), faults.encode_error(body)))
    _exit(1)


def restored(hooks: Callable[[], None]) -> None:
    """In a fork of a snapshot: run the after-restore ``hooks``, then Ready (or InitFailed)."""
    try:
        hooks()
    except SystemExit as exc:
        _system_exit(exc)
    except Exception as exc:  # noqa: BLE001 - a failing hook fails the restore
        _init_failed(faults.exception_body(exc, _RUNTIME_FILE))
    send(Ready(_max_rss_kb()))


def _set_trace_id(trace_id: str | None) -> None:
    """_X_AMZN_TRACE_ID is the current request's, and absent when it has none."""
    if trace_id is not None:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    elif "_X_AMZN_TRACE_ID" in os.environ:
        del os.environ["_X_AMZN_TRACE_ID"]


def _invoke(handler: Handler, encoder: Any, info: FunctionInfo, inv: Invoke) -> None:
    logsetup.RequestState.request_id = inv.request_id
    logsetup.RequestState.tenant_id = inv.tenant_id
    _set_trace_id(inv.trace_id)
    started = time.perf_counter_ns()
    try:
        context = LambdaContext(
            info, inv.request_id, inv.deadline_ms, inv.invoked_arn, inv.client_context, inv.cognito_identity, inv.tenant_id
        )
        result = marshal.encode_response(encoder, handler(marshal.decode_event(inv.payload), context))
        if len(result) > MAX_PAYLOAD:
            raise Fault(
                faults.RESPONSE_TOO_LARGE,
                "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            )
    except Fault as fault:
        body = faults.fault_body(fault, inv.request_id)
    except SystemExit as exc:
        _system_exit(exc)
    except MemoryError as exc:
        if oom_on_memory_error:
            _out_of_memory()
        body = faults.exception_body(exc, _RUNTIME_FILE, inv.request_id)
    except Exception as exc:  # noqa: BLE001 - the handler's error is the invocation's result
        body = faults.exception_body(exc, _RUNTIME_FILE, inv.request_id)
    else:
        duration = time.perf_counter_ns() - started
        logsetup.flush()
        send(Response(inv.request_id, result, duration, _max_rss_kb()))
        return
    duration = time.perf_counter_ns() - started
    if body["errorType"] != faults.RESPONSE_TOO_LARGE:
        sys.stdout.write(logsetup.error_record(body))
    logsetup.flush()
    send(FunctionError(inv.request_id, str(body["errorType"]), faults.encode_error(body), duration, _max_rss_kb()))


def attach(in_fd: int, out_fd: int) -> None:
    """Talk to the scheduler on these control fds from now on."""
    global control_in_fd, control_out_fd
    control_in_fd, control_out_fd = in_fd, out_fd


def main(in_fd: int, out_fd: int, handler_spec: str) -> NoReturn:
    """Run Init, then serve invocations until the scheduler closes the control pipe."""
    attach(in_fd, out_fd)
    logsetup.install()
    serve(_init(handler_spec))


def serve(handler: Handler) -> NoReturn:
    """One invocation at a time until the scheduler closes the control pipe."""
    in_fd = control_in_fd
    encoder = marshal.make_encoder()
    info = FunctionInfo()
    reader = _FrameReader(in_fd)
    try:
        while True:
            inv = reader.next()
            if inv is None:
                _exit(0)  # the scheduler is gone or retired us
            _invoke(handler, encoder, info, inv)
    except SystemExit as exc:  # e.g. sys.exit() in the function's own SIGTERM handler
        _system_exit(exc)
