"""``serve --watch``: a change in a template function's code folder or one of its layers
reloads that function, as an UpdateFunctionCode would; other functions stay warm.

    inotify.py (the folders of every template function, and the template's own folder)
      ─► ignore bytecode, editor temp files and .git ─► group by function ─► debounce
      ─► Scheduler.reload_code(name): a new pool; idle environments shut down now, busy ones
         when their invocation ends; the next invocation starts cold on the new code

A burst of events (an editor's save is several; a ``git checkout`` hundreds) reloads each
function once, ``debounce_s`` after the last of them (``MAX_DELAY_S`` after the first at the
latest); a folder replaced whole is watched anew when its change is applied. New code that does
not compile is not checked here: the next invocation's Init reports it as Lambda does
(``Runtime.UserCodeSyntaxError``) and the server stays up; fixing the file reloads again. A
change of the template itself is read again and applied function by function where nothing
else changed (template_reload.py); otherwise the log asks for a restart.
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import glob
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from . import template_reload
from .cfn import TemplateError
from .config import FunctionConfig
from .engine.scheduler import Scheduler
from .errors import ConfigError, SchedulerError
from .inotify import Change, Inotify
from .template import Template

log = logging.getLogger("lambda_scheduler.watch")

DEBOUNCE_S = 0.2
MAX_DELAY_S = 2.0  # a folder written to without pause (a log file in it) still reloads this often
_SKIPPED_FOLDERS = ("__pycache__", ".git", ".hg", ".svn", ".aws-sam", ".lambda-scheduler", ".mypy_cache", ".pytest_cache")
# Files no import reads: bytecode, and what editors write beside the file they save (vim's
# swap files and its 4913 probe, emacs' lock and autosave files, backups ending in ~).
_IGNORED_FILES = ("*.pyc", "*.pyo", "*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", ".DS_Store")


_OVERFLOW = "(too many changes to list)"


def ignored(path: str) -> bool:
    """Is ``path`` (relative to the watched folder: code built by ``sam build`` lives under
    ``.aws-sam/``) one no import reads?"""
    parts = Path(path).parts
    if any(part in _SKIPPED_FOLDERS for part in parts[:-1]):
        return True
    name = parts[-1] if parts else ""
    return name in _SKIPPED_FOLDERS or any(fnmatch.fnmatchcase(name, pattern) for pattern in _IGNORED_FILES)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def drop_stale_bytecode(path: str) -> None:
    """Remove the cached bytecode of a changed ``.py`` file. Python trusts a ``.pyc`` whose
    recorded source mtime (whole seconds) and size match: an edit in the same second that keeps
    the size (``"v1"`` → ``"v2"``) would otherwise be imported as the old code."""
    if not path.endswith(".py"):
        return
    folder, name = os.path.split(path)
    for cached in glob.glob(os.path.join(glob.escape(folder), "__pycache__", glob.escape(name[:-3]) + ".*.pyc")):
        try:
            os.unlink(cached)
        except OSError as exc:
            log.debug("could not remove %s: %s", cached, exc)


class CodeWatcher:
    def __init__(
        self,
        scheduler: Scheduler,
        template: Template,
        *,
        load: Callable[[], Template] | None = None,
        exclude: Iterable[str | os.PathLike[str]] = (),
        reloaded: Callable[[str], None] = lambda name: None,
        debounce_s: float = DEBOUNCE_S,
    ) -> None:
        """``load``: reads the template again when it changes (template_reload.py applies what
        it can); None: a change is only reported. ``exclude``: folders the server itself writes
        to (its data and log dirs), which a function's folder may hold (``CodeUri: .``): their
        changes are no code change. ``reloaded(name)``: called after each reload of a
        function's code (the API's record of the code)."""
        self.scheduler = scheduler
        self.reloaded = reloaded
        self.current = template
        self.template = str(template.path.resolve())
        self.load = load
        self.debounce_s = debounce_s
        self.exclude = tuple(os.path.realpath(p) for p in exclude)
        self.folders: dict[str, set[str]] = {}
        self._watch_functions(template.functions)
        self._inotify: Inotify | None = None
        self._pending: dict[str, str] = {}  # function -> a file that changed (for the log)
        self._template_changed = False
        self._timer: asyncio.TimerHandle | None = None
        self._due: float | None = None  # the latest a pending reload may wait until (loop time)
        self._touched: set[str] = set()  # watched folders with a pending change
        self._loading: asyncio.Task[None] | None = None  # the template being read again

    def _watch_functions(self, functions: Iterable[FunctionConfig]) -> None:
        """Each folder to watch (code or layer, real path), and the functions that import from it."""
        self.folders = {}
        for config in functions:
            for folder in (config.code_dir, *config.layers):
                self.folders.setdefault(os.path.realpath(folder), set()).add(config.name)

    def start(self) -> None:
        """Watch every folder; ConfigError (naming --watch) if the host will not let us."""
        try:
            notify = Inotify(skip=_SKIPPED_FOLDERS)
        except OSError as exc:
            raise ConfigError("watch", f"inotify is not available here: {exc.strerror}") from None
        try:
            for folder in self.folders:
                notify.watch_tree(folder)
            notify.watch_folder(os.path.dirname(self.template))
        except OSError as exc:
            notify.close()
            hint = " (raise fs.inotify.max_user_watches)" if exc.errno == errno.ENOSPC else ""
            raise ConfigError("watch", f"cannot watch {exc.filename or 'a folder'}: {exc.strerror}{hint}") from None
        self._inotify = notify
        asyncio.get_running_loop().add_reader(notify.fileno(), self._readable)
        names = sorted({n for names in self.folders.values() for n in names})
        log.info("watching %d folders of %s for changes", len(self.folders), ", ".join(names) or "no function")

    def close(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None

    def _readable(self) -> None:
        assert self._inotify is not None
        changes = self._inotify.read()
        noted = [self.note(change) for change in changes]  # every one, not up to the first that counts
        if any(noted):
            loop = asyncio.get_running_loop()
            if self._timer is not None:
                self._timer.cancel()
            if self._due is None:
                self._due = loop.time() + MAX_DELAY_S
            delay = max(0.0, min(self.debounce_s, self._due - loop.time()))
            self._timer = loop.call_later(delay, self.apply)

    def note(self, change: Change) -> bool:
        """Record what ``change`` affects; False if nothing."""
        if change.overflow:  # events were lost: any function may have changed
            for names in self.folders.values():
                self._pending.update(dict.fromkeys(names, _OVERFLOW))
            return True
        path = change.path
        if path == self.template:
            self._template_changed = True
            return True
        if any(_under(path, folder) for folder in self.exclude):
            return False
        affected = [f for f in self.folders if _under(path, f) and not ignored(os.path.relpath(path, f))]
        if affected:
            drop_stale_bytecode(path)
        for folder in affected:
            self._touched.add(folder)
            self._pending.update(dict.fromkeys(self.folders[folder], path))  # the latest: an editor's temp file comes first
        return bool(affected)

    def _rewatch(self, folder: str) -> None:
        """Watch ``folder`` again: replaced whole (``rm -r`` and a copy, a branch switch), it
        lost its watches with its old self. Adding a watch a folder has already is harmless."""
        if self._inotify is not None and os.path.isdir(folder):
            try:
                self._inotify.watch_tree(folder)
            except OSError as exc:
                log.warning("cannot watch %s any more: %s", folder, exc)

    def _still_from(self, name: str, path: str) -> bool:
        """Does ``name`` still import from where ``path`` lies? Not once UpdateFunctionCode
        gave it uploaded code, nor once it is deleted."""
        status = self.scheduler.functions.get(name)
        if status is None:
            return False
        config = status.config
        return path == _OVERFLOW or any(
            _under(path, os.path.realpath(folder)) for folder in (config.code_dir, *config.layers)
        )

    def apply(self) -> None:
        self._timer = self._due = None
        pending, self._pending = self._pending, {}
        touched, self._touched = self._touched, set()
        for folder in touched:
            self._rewatch(folder)
        for name, path in sorted(pending.items()):
            if not self._still_from(name, path):
                continue
            try:
                self.scheduler.reload_code(name)
            except SchedulerError as exc:  # removed over the API, or the server is stopping
                log.info("not reloading %s: %s", name, exc.message)
                continue
            self.reloaded(name)
            log.info("reloaded %s: %s changed; its next invocation runs the new code", name, path)
        if self._template_changed:
            self._template_changed = False
            if self.load is None:
                log.warning("%s changed: restart lambda-scheduler serve to apply it", self.template)
            elif self._loading is None or self._loading.done():
                self._loading = asyncio.ensure_future(self._reload_template())
            else:  # still reading the previous change: read it once more after
                self._template_changed = True
                self._timer = asyncio.get_running_loop().call_later(self.debounce_s, self.apply)

    async def _reload_template(self) -> None:
        assert self.load is not None
        try:
            new = await asyncio.to_thread(self.load)
        except TemplateError as exc:
            log.error("%s changed but does not load (%s): still serving it as it was", self.template, exc)
            return
        for runtime in template_reload.runtimes_of(new):
            await self.scheduler.prepare_runtime(runtime)
        outcome = template_reload.apply(self.scheduler, self.current, new)
        if outcome.restart:
            log.warning(
                "%s changed beyond its functions (%s): restart lambda-scheduler serve to apply it",
                self.template,
                ", ".join(outcome.restart),
            )
            return
        self.current = new
        self._watch_functions(new.functions)
        for folder in self.folders:
            self._rewatch(folder)
        for line in outcome.changed:
            log.info("template reloaded: %s", line)
        for line in outcome.left:
            log.warning("template reloaded: %s", line)
        if not outcome.changed and not outcome.left:
            log.info("template reloaded: its functions are unchanged")
