"""Handlers for the HTTP API tests: they leave a trace on disk, so a test can see that an Event
invocation ran, and how often, without any channel back from the queue."""

import os
import time


def _append(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")
    with open(path) as f:
        return len(f.read().splitlines())


def record(event, context):
    """Append this request's id to event["path"]; raise if event["fail"]."""
    count = _append(event["path"], context.aws_request_id)
    if event.get("fail"):
        raise RuntimeError(f"failing on purpose (attempt {count})")
    return {"request_id": context.aws_request_id, "attempt": count}


def timeout_once(event, context):
    """Time out on the first attempt, succeed on the next."""
    if _append(event["path"], context.aws_request_id) == 1:
        time.sleep(60)
    return "done"


def version(event, context):
    return {"version": os.environ.get("CODE_VERSION", "none")}


def record_then_sleep(event, context):
    """Append this request's id to event["path"], then sleep event["sleep"] seconds."""
    _append(event["path"], context.aws_request_id)
    time.sleep(event.get("sleep", 0))
    return {"request_id": context.aws_request_id}


def keep(event, context):
    """A destination: append the record it was invoked with, as one JSON line, to the file
    named by the environment variable KEEP_PATH."""
    import json

    _append(os.environ["KEEP_PATH"], json.dumps(event))


def ignore_sigterm(event, context):
    """Run event["sleep"] seconds, deaf to SIGTERM (only SIGKILL ends it)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _append(event["path"], context.aws_request_id)
    time.sleep(event["sleep"])
    return "done"
