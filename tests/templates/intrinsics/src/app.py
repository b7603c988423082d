import os


def handler(event, context):
    return {key: value for key, value in os.environ.items() if key.startswith("X_")}
