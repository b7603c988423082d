"""Handlers for the observability tests: output outside an invocation, and at Init."""

import os
import sys
import threading
import time

print(f"init output of {os.environ.get('AWS_LAMBDA_LOG_STREAM_NAME')}")


def print_later(event, context):
    """Return at once; a thread prints event["text"] after event["delay"] seconds, when the
    environment is idle between invocations."""

    def later():
        time.sleep(event.get("delay", 0.05))
        sys.stdout.write(event["text"] + "\n")

    threading.Thread(target=later, daemon=True).start()
    return context.log_stream_name


def stream(event, context):
    return context.log_stream_name


def wait_then_stream(event, context):
    """Block until the file named in the event exists, then name this environment's stream."""
    while not os.path.exists(event["path"]):
        time.sleep(0.002)
    return context.log_stream_name
