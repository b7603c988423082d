"""SnapStart's effect on the cold start of a function whose Init imports boto3: cold starts of
the same function as ``$LATEST`` (Init runs in every new environment) and as a version published
with ``SnapStart: ApplyOn: PublishedVersions`` (every new environment is a fork of the snapshot
that ran Init once), taken in turn so that a noisy host weighs on both alike.

    python benchmarks/snapstart.py [--n 20] [--python /path/to/python3.12]

SnapStart needs python3.12 or later: pyenv's is used unless --python names one. boto3 comes
from this server's own environment (pure Python), copied into a layer folder.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler import FunctionConfig, Scheduler
from scheduler.engine.stops import StopReason
from scheduler.snapstart import SnapStartApplyOn

CHECKOUT = Path(__file__).resolve().parent.parent
RUNTIME = "python3.12"
HANDLER = "import boto3\n\nCLIENT = boto3.client('s3', region_name='us-east-1')\n\n\ndef handler(event, context):\n    return None\n"
# boto3 and what it imports, all pure Python: linked into a layer for the other interpreter.
BOTO = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def _pyenv(runtime: str) -> str | None:
    release = runtime.removeprefix("python")
    found = sorted(Path("/root/.pyenv/versions").glob(f"{release}.*/bin/{runtime}"), reverse=True)
    return str(found[0]) if found else None


def _boto_layer(root: Path) -> Path:
    layer = root / "layer" / "python"
    layer.mkdir(parents=True)
    for name in BOTO:
        module = importlib.import_module(name)
        source = Path(module.__file__ or "")
        path = source.parent if source.name == "__init__.py" else source
        # Copied, not linked: an environment's view shows its layers, not the server's venv.
        if path.is_dir():
            shutil.copytree(path, layer / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, layer / path.name)
    return layer.parent


def _p50(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}" if values else "       -"


async def _measure(python: str, n: int) -> dict[str, Any]:
    parent = CHECKOUT / ".tmp"
    parent.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-snapstart-", dir=parent))
    try:
        return await _run(root, python, n)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _run(root: Path, python: str, n: int) -> dict[str, Any]:
    code = root / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    for path in (root, code):
        path.chmod(0o755)
    config = FunctionConfig(
        name="boto",
        handler="app.handler",
        code_dir=code,
        runtime=RUNTIME,
        layers=(_boto_layer(root),),
        snapstart=SnapStartApplyOn.PUBLISHED_VERSIONS,
        timeout_s=30,
    )
    cold: dict[str, list[float]] = {"on-demand": [], "snap-start": []}
    init: dict[str, list[float]] = {"on-demand": [], "snap-start": []}
    async with Scheduler([config], runtime_interpreters={RUNTIME: python}, init_timeout_s=30) as s:
        await s.invoke("boto", {})  # the zygote up before the first round
        published = s.get_function("boto").versions.versions[s.publish_version("boto").version]
        assert published.snapshot is not None
        began = time.perf_counter()
        await asyncio.wait_for(asyncio.shield(published.snapshot.client.ready), 120)
        snapshot_ms = (time.perf_counter() - began) * 1000
        print(f"snapshot taken (Init once) in {snapshot_ms:.1f} ms")
        pool = published.pool
        for _ in range(n):
            s.reload_code("boto")  # $LATEST: a new environment, Init again
            began = time.perf_counter()
            result = await s.invoke("boto", {})
            cold["on-demand"].append((time.perf_counter() - began) * 1000)
            init["on-demand"].append(result.init_duration_ms or 0.0)
            while pool.idle:  # the version: a new fork of the snapshot
                pool.retire(pool.idle.popleft(), StopReason.CONFIG_CHANGE)
            began = time.perf_counter()
            result = await s.invoke("boto", {}, qualifier=published.version)
            cold["snap-start"].append((time.perf_counter() - began) * 1000)
            init["snap-start"].append(result.init_duration_ms or 0.0)
            assert result.start == "cold" and "Restore Duration" in result.log, result.log
    print(f"{'':11} {'cold p50 ms':>12} {'Init / Restore p50 ms':>22}")
    for kind, times in cold.items():
        print(f"{kind:11} {_p50(times):>12} {_p50(init[kind]):>22}")
    return {
        "n": n,
        "python": python,
        "snapshot_ms": snapshot_ms,
        "cold_p50_ms": {kind: statistics.median(times) for kind, times in cold.items()},
        "init_or_restore_p50_ms": {kind: statistics.median(times) for kind, times in init.items()},
        "speedup_p50": statistics.median(cold["on-demand"]) / statistics.median(cold["snap-start"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="cold starts of each kind (default: 20)")
    parser.add_argument("--python", default=None, help=f"a {RUNTIME} (or later) interpreter")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "snapstart.json")
    parser.add_argument("--quick", action="store_true", help="5 cold starts of each kind")
    args = parser.parse_args()
    python = args.python or _pyenv(RUNTIME)
    if python is None:
        sys.exit(f"no {RUNTIME} interpreter found: give one with --python")
    figures = uvloop.run(_measure(python, 5 if args.quick else args.n))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
