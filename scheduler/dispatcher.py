"""Moved to :mod:`scheduler.events.dispatcher`; this name stays importable."""

from .events.dispatcher import EventDispatcher

__all__ = ["EventDispatcher"]
