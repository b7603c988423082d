"""The load-testing harness behind ``lambda-scheduler load``.

    cli.py ─► config.py LoadConfig ─► runner.py ─┬─ arrivals.py  when requests are due (open / closed loop)
                                                 ├─ workload.py  which function, which event (weighted mix)
                                                 ├─ client.py    one Invoke over aiohttp; cold / warm, errors
                                                 ├─ recorder.py  histograms (histogram.py), per-interval rows
                                                 └─ selfcheck.py is the harness itself the bottleneck?
              results.py (JSON, table) · progress.py (live line) · plots.py (PNG, optional matplotlib)

It speaks only the public Invoke API, so it drives any Lambda-compatible endpoint.

    from scheduler.load import LoadConfig, OpenLoop, Stage, Target, run_load
    result = await run_load(LoadConfig("http://127.0.0.1:9000", (Target("hello"),),
                                       OpenLoop((Stage(10, 100, 100),))))
"""

from .arrivals import ClosedLoop, OpenLoop, Stage
from .config import LoadConfig
from .histogram import Histogram
from .results import table, to_json
from .runner import LoadResult, run_load
from .workload import Target

__all__ = [
    "ClosedLoop",
    "Histogram",
    "LoadConfig",
    "LoadResult",
    "OpenLoop",
    "Stage",
    "Target",
    "run_load",
    "table",
    "to_json",
]
