import os


def handler(event, context):
    return {
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "greeting": os.environ.get("GREETING"),
        "stage": os.environ.get("STAGE"),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
