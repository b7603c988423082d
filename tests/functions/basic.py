"""Well-behaved handlers for tests: echo, state, context, environment, logs, /tmp."""

import logging
import os
import sys
import threading
import time

INIT_PID = os.getpid()
CALLS = 0
logger = logging.getLogger()


def echo(event, context):
    return event


def noop(event, context):
    return None


def counter(event, context):
    global CALLS
    CALLS += 1
    return {"calls": CALLS, "pid": os.getpid(), "init_pid": INIT_PID}


def whoami(event, context):
    return {"pid": os.getpid()}


def sleep(event, context):
    time.sleep(event.get("seconds", 0.1))
    return {"pid": os.getpid(), "slept": event.get("seconds", 0.1)}


def wait_for_file(event, context):
    """Block until the file named in the event exists: lets a test hold an environment busy
    for exactly as long as it wants, with no sleeps in the test."""
    path = event["path"]
    while not os.path.exists(path):
        time.sleep(0.002)
    if event.get("arn"):
        return {"pid": os.getpid(), "arn": context.invoked_function_arn}
    return {"pid": os.getpid()}


def context_dump(event, context):
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "client_context": None
        if cc is None
        else {"custom": cc.custom, "env": cc.env, "app_title": cc.client.app_title if cc.client else None},
        "tenant_id": context.tenant_id,
    }


def environ(event, context):
    return {"environ": dict(os.environ), "cwd": os.getcwd(), "path": sys.path[:3]}


def remaining(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(event.get("seconds", 0.2))
    return {"first": first, "second": context.get_remaining_time_in_millis()}


def prints(event, context):
    print("line one")
    print("line two", file=sys.stderr)
    context.log("via context.log\n")
    logger.warning("a warning with %s", "args")
    logging.getLogger().info("info is below the default level")
    return "printed"


def tmp_write(event, context):
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), event["name"])
    with open(path, "w") as f:
        f.write(event["value"])
    return {"pid": os.getpid(), "path": path}


def tmp_read(event, context):
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), event["name"])
    try:
        with open(path) as f:
            return {"pid": os.getpid(), "value": f.read()}
    except FileNotFoundError:
        return {"pid": os.getpid(), "value": None}


_ticks = 0


def _ticker():
    global _ticks
    while True:
        _ticks += 1
        time.sleep(0.001)


_ticker_thread = None


def ticker(event, context):
    """Start (once) a background thread that counts every millisecond; return its count."""
    global _ticker_thread
    if _ticker_thread is None:
        _ticker_thread = threading.Thread(target=_ticker, daemon=True)
        _ticker_thread.start()
    return _ticks


def mark(event, context):
    """Print a marker naming the request, in several writes, then return it."""
    for i in range(event.get("lines", 3)):
        print(f"marker {context.aws_request_id} {i}")
    return context.aws_request_id


def tmp_note(event, context):
    """Write a note in the temp dir (if given a value), optionally wait for a host file, then
    read the note back."""
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "note")
    if "value" in event:
        with open(path, "w") as f:
            f.write(event["value"])
    if "wait" in event:
        while not os.path.exists(event["wait"]):
            time.sleep(0.002)
    try:
        with open(path) as f:
            value = f.read()
    except FileNotFoundError:
        value = None
    return {"pid": os.getpid(), "value": value}
