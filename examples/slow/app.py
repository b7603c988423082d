"""Sleeps for ``event["seconds"]``: past the function's 2 s timeout it is stopped and the caller
gets Lambda's Sandbox.Timedout error."""

import time


def handler(event, context):
    seconds = float((event or {}).get("seconds", 1))
    print(f"sleeping {seconds} s with {context.get_remaining_time_in_millis()} ms left")
    time.sleep(seconds)
    return {"slept": seconds}
