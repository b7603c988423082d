"""Functions that leave a mark on the host when they run, and the requests an attacker's page
would send: so a test can prove that a refused request created nothing and ran nothing."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from scheduler import FunctionConfig

# Appends a line to $MARK at import (Init) and on every invocation.
MARKING_HANDLER = """\
import os

with open(os.environ["MARK"], "a") as f:
    f.write("init\\n")


def handler(event, context):
    with open(os.environ["MARK"], "a") as f:
        f.write("invoke\\n")
    return {"ran": True}
"""

ROLE = "arn:aws:iam::123456789012:role/any"


def victim(tmp_path: Path, name: str = "victim") -> tuple[FunctionConfig, Path]:
    """A function of the server's own, and the file it writes when it runs."""
    code = tmp_path / f"{name}-code"
    code.mkdir()
    (code / "app.py").write_text(MARKING_HANDLER)
    mark = tmp_path / f"{name}.ran"
    config = FunctionConfig(name=name, handler="app.handler", code_dir=code, environment={"MARK": str(mark)})
    return config, mark


def marking_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", MARKING_HANDLER)
    return buffer.getvalue()


def create_function_args(name: str, mark: Path) -> dict[str, Any]:
    """boto3's create_function arguments for a function that marks ``mark`` when it runs."""
    return {
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": marking_zip()},
        "Environment": {"Variables": {"MARK": str(mark)}},
    }


def create_function_body(name: str, mark: Path) -> str:
    """CreateFunction's JSON (what a page would send) for the same function."""
    args = create_function_args(name, mark)
    args["Code"] = {"ZipFile": base64.b64encode(marking_zip()).decode()}
    return json.dumps(args)
