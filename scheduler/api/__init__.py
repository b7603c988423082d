"""The Lambda REST API over aiohttp: ``init_app(scheduler, settings) -> web.Application``."""

from .app import init_app

__all__ = ["init_app"]
