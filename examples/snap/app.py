"""A SnapStart function: its Init (a slow import, a connection pool's set-up) runs once, when a
version is published; every environment of that version is restored from the snapshot."""

import os
import random
import time
import uuid

from snapshot_restore_py import register_after_restore, register_before_snapshot

STARTED = time.time()
time.sleep(0.2)  # stands for Init work worth snapshotting: imports, models, clients
INSTANCE = {"id": None}


@register_before_snapshot
def before_snapshot():
    # Nothing unique may be in the snapshot: every restored environment would share it.
    INSTANCE["id"] = None


@register_after_restore
def after_restore():
    INSTANCE["id"] = str(uuid.uuid4())  # unique per environment, made after the restore


def handler(event, context):
    return {
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "instance": INSTANCE["id"],
        "init_ran_at": STARTED,
        "random": random.random(),  # reseeded at restore: environments differ
        "version": context.function_version,
    }
