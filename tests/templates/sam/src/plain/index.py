import os


def lambda_handler(event, context):
    return {"plain": True, "stage": os.environ.get("STAGE"), "tmp_mb": os.environ.get("EPHEMERAL_HINT")}
