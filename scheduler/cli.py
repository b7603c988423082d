"""Command line: ``lambda-scheduler serve | invoke``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(f"lambda-scheduler: not yet implemented: {' '.join(args)}", file=sys.stderr)
    return 2
