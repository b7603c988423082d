"""What the guards refused: counts by reason, and one log line per distinct refusal.

    api/guard.py (Host, Origin, Sec-Fetch-Site) ─┐
    api/auth.py  (SigV4, by AWS error code)     ─┴─► Refusals.refuse(...) ─► GET /health "refused"

A page hammering the port from a browser, or a scraper without credentials, would otherwise
fill the log: each (reason, value) pair is logged once at warning level, later ones at debug.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Literal

from ..errors import SchedulerError

log = logging.getLogger("lambda_scheduler.api")

# Why api/guard.py refused a request; api/auth.py counts by its AWS error code instead.
GuardReason = Literal["host", "origin", "cross_site"]

_LOGGED_AT_MOST = 256


class Refusals:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def refuse(self, reason: str, value: str, error: SchedulerError) -> SchedulerError:
        """Count and log a refusal; returns ``error`` for the caller to raise."""
        self.counts[reason] += 1
        key = (reason, value[:200])
        if key not in self._logged and len(self._logged) < _LOGGED_AT_MOST:
            self._logged.add(key)
            log.warning("refused a request (%s %s): %s", reason, key[1], error.message)
        else:
            log.debug("refused a request (%s %s)", reason, key[1])
        return error

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
