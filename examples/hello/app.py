"""A minimal function: greets the caller and counts its own warm invocations."""

import os

INVOCATIONS = 0  # survives between invocations of one warm environment


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    name = (event or {}).get("name", "world")
    print(f"greeting {name}")
    return {
        "message": f"{os.environ.get('GREETING', 'hello')}, {name}!",
        "invocations_in_this_environment": INVOCATIONS,
        "request_id": context.aws_request_id,
    }
