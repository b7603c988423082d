"""A SnapStart function: Init leaves traces (a line per Init in INIT_LOG, module state), and
runtime hooks record their order."""

import os
import random
import time

from snapshot_restore_py import register_after_restore, register_before_snapshot

if os.environ.get("FAIL_INIT"):
    raise RuntimeError("Init fails on purpose")

INIT_PID = os.getpid()
EVENTS = []
with open(os.environ["INIT_LOG"], "a") as log:
    log.write(f"init {INIT_PID}\n")


@register_before_snapshot
def first_before():
    EVENTS.append("before-1")


def second_before(tag):
    EVENTS.append(f"before-{tag}")


register_before_snapshot(second_before, "2")


@register_after_restore
def first_after():
    EVENTS.append("after-1")


@register_after_restore
def second_after():
    EVENTS.append("after-2")


if os.environ.get("FAIL_RESTORE"):

    @register_after_restore
    def broken_restore():
        raise RuntimeError("the after-restore hook fails on purpose")


def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    with open(os.environ["INIT_LOG"]) as log:
        inits = log.read().splitlines()
    return {
        "pid": os.getpid(),
        "init_pid": INIT_PID,
        "events": EVENTS,
        "inits": inits,
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "random": random.random(),
        "version": context.function_version,
        "cgroup": open("/proc/self/cgroup").read(),
    }
