import os


def handler(event, context):
    import base_tools
    import extra_tools

    env = {key: value for key, value in os.environ.items() if key.startswith("X_")}
    return {"env": env, "layers": [base_tools.NAME, extra_tools.NAME]}
