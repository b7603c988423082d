"""A realistic Init: the handler module imports boto3, as most Lambda functions do."""

import boto3  # noqa: F401  (the import is the Init being measured)


def handler(event, context):
    return {}
