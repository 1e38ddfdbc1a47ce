"""Caches that keep their entries in use fresh ahead of time, off the request path: what such a
cache offers (`Refresher`) and the loop that runs it in a greenlet of its own (a worker's, or an
isolated handler's for the application's caches)."""

from __future__ import annotations

import logging
from typing import Protocol

import gevent

log = logging.getLogger("x15g.cache")


class Refresher(Protocol):
    """A cache that revalidates what is about to expire (static/filecache.py, specweb/filecache.py)."""

    @property
    def tick(self) -> float:
        """Seconds between refreshes; 0 for never."""
        ...

    def refresh(self) -> None:
        """Revalidate what is about to expire; may block (runs in its own greenlet)."""
        ...


def keep_fresh(refresher: Refresher) -> None:
    """Refresh every `tick` seconds until the greenlet is killed (a tick of 0: return at once)."""
    tick = refresher.tick
    while tick > 0:
        gevent.sleep(tick)
        try:
            refresher.refresh()
        except Exception:  # a failed refresh leaves entries to the request path; try again
            log.exception("refreshing a cache failed")
