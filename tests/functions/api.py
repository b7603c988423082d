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
