"""``serve --watch`` and the template itself: what of a changed template can be applied live.

    template changed ─► loaded again (watch.py, in a thread; one that does not load changes nothing)
      ─► anything but its functions differs (event-invoke settings, dead-letter queues, whatever
         else a template holds): nothing is applied, a restart is asked for
      ─► else, function by function, as the management API would do it:
           new in the template  → add_function
           gone from it         → remove_function
           changed              → update_function (new environments for new invocations)
         a function the API changed or made since (UpdateFunctionConfiguration, UpdateFunctionCode,
         CreateFunction of the same name) is left as the API made it, with a note.

Only whole functions move, each the way Lambda moves one; what the server set up once at start
from the rest of the template (the event dispatcher's settings) is not rebuilt under it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import FunctionConfig
from .engine.scheduler import Scheduler
from .errors import SchedulerError
from .template import Template

_FUNCTION_FIELDS = ("path", "functions", "notes")  # what apply() handles, or what does not matter


@dataclass
class Outcome:
    changed: list[str] = field(default_factory=list)  # one line per function added, updated, removed
    left: list[str] = field(default_factory=list)  # one line per function not touched, and why
    restart: list[str] = field(default_factory=list)  # what differs that only a restart applies


def beyond_functions(old: Template, new: Template) -> list[str]:
    """The template's parts, besides its functions, that differ between ``old`` and ``new``."""
    return [
        f.name for f in dataclasses.fields(Template) if f.name not in _FUNCTION_FIELDS and getattr(old, f.name) != getattr(new, f.name)
    ]


def runtimes_of(template: Template) -> set[str]:
    return {config.runtime for config in template.functions}


def apply(scheduler: Scheduler, old: Template, new: Template) -> Outcome:
    """Bring the scheduler's template functions from ``old`` to ``new`` (see the module doc).
    The runtimes of ``new`` should be chosen already (``Scheduler.prepare_runtime``)."""
    outcome = Outcome(restart=beyond_functions(old, new))
    if outcome.restart:
        return outcome
    before = {config.name: config for config in old.functions}
    after = {config.name: config for config in new.functions}
    for name in sorted(before.keys() | after.keys()):
        _one(scheduler, name, before.get(name), after.get(name), outcome)
    return outcome


def _one(scheduler: Scheduler, name: str, was: FunctionConfig | None, now: FunctionConfig | None, out: Outcome) -> None:
    if was == now:
        return
    running = scheduler.functions.get(name)
    current = running.config if running is not None else None
    if current != was:  # not what the template made it: the API changed, made or deleted it since
        out.left.append(f"{name}: changed over the API since the template was loaded; left as it is")
        return
    try:
        if now is None:
            scheduler.remove_function(name)
            out.changed.append(f"{name}: removed")
        elif was is None:
            scheduler.add_function(now)
            out.changed.append(f"{name}: added")
        else:
            scheduler.update_function(now)
            out.changed.append(f"{name}: updated")
    except SchedulerError as exc:
        out.left.append(f"{name}: {exc.message}")
