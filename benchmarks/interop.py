"""Benchmark 6: interop — an external harness drives the endpoint. Debian's wrk runs
benchmarks/invoke.lua (the same script the HTTP benchmark uses) once, in its checking mode:
every response's status and X-Amz-Function-Error are counted, so the run shows both how to
point wrk at the Invoke API and that the endpoint answers it as Lambda does. Its full output
is kept, for BENCHMARKS.md to show as is.

    python benchmarks/interop.py [--quick]
"""

from __future__ import annotations

from typing import Any

from benchlib.common import command_line, parser, save
from benchlib.servers import BENCH, ROOT, serverless_offline_available, start_ours, start_serverless_offline
from benchlib.wrk import run_wrk


def drive(start: Any, duration: float) -> dict[str, Any]:
    server = start()
    try:
        run = run_wrk(server.url, "echo", 4, duration, event='{"token": "interop"}', check=True)
    finally:
        server.stop()
    command = (
        f"wrk -t1 -c4 -d{duration:g}s -s {(BENCH / 'invoke.lua').relative_to(ROOT)} {server.url} "
        '-- echo \'{"token": "interop"}\' check'
    )
    print(f"$ {command}\n{run.output}", flush=True)
    statuses = run.checked_statuses
    return {
        "command": command,
        "output": run.output,
        "requests": run.requests,
        "rate": run.rate,
        "statuses": statuses,
        "function_errors": run.function_errors,
        "socket_errors": run.errors,
        "ok": run.requests > 0 and set(statuses) == {"200"} and run.function_errors == 0,
    }


def main() -> None:
    args = parser(__doc__, "interop").parse_args()
    duration = 1.0 if args.quick else 3.0
    results: dict[str, Any] = {"lambda-scheduler": drive(start_ours, duration)}
    if serverless_offline_available() is None:
        try:
            results["serverless-offline"] = drive(start_serverless_offline, duration)
        except RuntimeError as exc:
            results["skipped"] = {"serverless-offline": str(exc)}
    results["targets"] = []
    save(args.out, results, quick=args.quick, command=command_line())


if __name__ == "__main__":
    main()
