"""The Prometheus text format (version 0.0.4) for ``GET /metrics``, written on the event loop.

    Metrics.render ─► registry.collect() (families) ─► render() ─► bytes

prometheus-client's ``generate_latest`` validates and escapes every label name of every
sample; on a server with many functions that is most of a scrape (≈ 5 µs a line: 30 ms for
6,000 lines, taken from the event loop once per scrape). The families here come from this
package, whose label names are fixed identifiers, so only label values are escaped, and only
when they contain a character that needs it. The output is the same text format; families of
a kind this writer does not handle are passed to ``generate_latest``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Family type → (suffix of the name in HELP/TYPE, type written), as generate_latest maps them.
_KINDS = {
    "counter": ("_total", "counter"),
    "gauge": ("", "gauge"),
    "histogram": ("", "histogram"),
    "info": ("_info", "gauge"),
    "unknown": ("", "untyped"),
}
# Samples of these suffixes are OpenMetrics-only: generate_latest moves them to gauges.
_OPENMETRICS_ONLY = ("_created", "_gsum", "_gcount")


def render(registry: CollectorRegistry, const_labels: Mapping[str, str] | None = None) -> bytes:
    """``const_labels`` are added to every sample this writer writes (a cluster node's
    ``node``), first, so one Prometheus can tell the nodes apart."""
    out: list[str] = []
    for family in registry.collect():
        kind = _KINDS.get(family.type)
        if kind is None or any(s.name.endswith(_OPENMETRICS_ONLY) or s.timestamp is not None for s in family.samples):
            out.append(generate_latest(_One(family)).decode())
            continue
        name = family.name + kind[0]
        out.append(f"# HELP {name} {_help(family.documentation)}\n# TYPE {name} {kind[1]}\n")
        out.extend(_lines(family, const_labels or {}))
    return "".join(out).encode()


def _lines(family: Metric, const_labels: Mapping[str, str]) -> Iterator[str]:
    for sample in family.samples:
        labels = {**const_labels, **sample.labels} if const_labels else sample.labels
        if labels:
            yield f"{sample.name}{{{_labels(labels)}}} {_value(sample.value)}\n"
        else:
            yield f"{sample.name} {_value(sample.value)}\n"


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join([f'{k}="{_escape(v)}"' for k, v in labels.items()])


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _One(Collector):
    """One family as a collector, for generate_latest."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterator[Metric]:
        yield self.family
