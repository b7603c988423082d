"""PNG plots of a run, drawn from its JSON document (so saved runs can be re-plotted):

- ``<prefix>latency_cdf.png``: the latency CDF, cold and warm apart, on a log time axis;
- ``<prefix>over_time.png``: answered requests per second and p99 latency, per interval.

matplotlib is an optional extra (``pip install 'lambda-scheduler[bench]'``); it is imported
only here, only when plots are asked for.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from .histogram import Histogram


class PlotsUnavailable(RuntimeError):
    pass


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable("plots need matplotlib: pip install 'lambda-scheduler[bench]' (or matplotlib)") from None
    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _wrap(title: str) -> str:
    return "\n".join(textwrap.wrap(title, 80))


def _cdf_series(doc: dict[str, Any]) -> list[tuple[str, list[float], list[float]]]:
    series = []
    for key, label in (("latency_warm", "warm"), ("latency_cold", "cold"), ("latency_unknown", "start unknown")):
        data = doc["histograms_us"].get(key)
        if not data or not data["count"]:
            continue
        points = Histogram.from_dict(data).cdf()
        series.append((f"{label} (n={data['count']})", [v / 1e3 for v, _ in points], [f for _, f in points]))
    return series


def latency_cdf(doc: dict[str, Any], path: Path, title: str | None = None) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, xs, ys in _cdf_series(doc):
        ax.step([max(x, 1e-3) for x in xs], ys, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency from intended start (ms, log scale)")
    ax.set_ylabel("fraction of requests ≤ latency")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(_wrap(title or f"Latency CDF — {doc['config']['description']}"), fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def over_time(doc: dict[str, Any], path: Path, title: str | None = None) -> Path:
    plt = _pyplot()
    rows = doc["timeline"]
    step = doc_interval(doc)
    # Each row covers [t, t + step): repeat the last value at the end so its step is drawn.
    t = [row["t_s"] for row in rows] + [rows[-1]["t_s"] + step] if rows else []

    def series(key: str, scale: float = 1.0) -> list[float]:
        values = [(row[key] or 0) * scale for row in rows]
        return values + values[-1:]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(t, series("per_s"), drawstyle="steps-post", label="answered/s")
    top.plot(t, series("sent", 1 / step), drawstyle="steps-post", alpha=0.6, label="sent/s")
    top.set_ylabel("requests per second")
    top.legend(loc="upper right")
    top.grid(True, alpha=0.3)
    bottom.plot(t, series("p99_ms"), drawstyle="steps-post", color="tab:red", label="p99")
    bottom.plot(t, series("p50_ms"), drawstyle="steps-post", color="tab:green", label="p50")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds into the run")
    bottom.legend(loc="upper right")
    bottom.grid(True, alpha=0.3)
    top.set_title(_wrap(title or f"Over time — {doc['config']['description']}"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def doc_interval(doc: dict[str, Any]) -> float:
    return float(doc["config"]["interval_s"])


def plot_all(doc: dict[str, Any], directory: Path, prefix: str = "") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        latency_cdf(doc, directory / f"{prefix}latency_cdf.png"),
        over_time(doc, directory / f"{prefix}over_time.png"),
    ]
