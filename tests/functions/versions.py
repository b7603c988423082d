"""Handlers that say which Python runs them."""

import logging
import os
import sys


def report(event, context):
    logging.getLogger().warning("running on %s", sys.version.split()[0])
    return {
        "version": list(sys.version_info[:3]),
        "executable": sys.executable,
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
        "pid": os.getpid(),
        "parent": os.getppid(),
        "worker": sys.modules["scheduler"].__file__,  # where its zygote imported the worker from
    }


def read_only(event, context):
    """Whether each path in the event lies on a read-only mount, in this environment's view."""
    return {path: bool(os.statvfs(path).f_flag & os.ST_RDONLY) for path in event["paths"]}
