"""The hung-request watchdog (`--timeout`): a worker whose hub stops turning exits.

Application code runs in the connection's greenlet on the worker's one hub, so a request that
spins on the CPU freezes every connection of that worker and no greenlet can notice. A hub timer
stores a heartbeat; a real OS thread (not a greenlet: it runs while the hub is stuck, the
interpreter hands it the GIL every switch interval) checks it. When the heartbeat is older than
the timeout on two checks in a row (one stale check may be a SIGSTOP just continued, whose hub
has not yet run its timer), the thread writes one error line naming the request inside
application code (observability/inflight.py), runs the worker's `last_words` (the access log's
buffered lines are written, so only the hung request's own line is lost) and ends the process
with `STALLED_EXIT`; the master replaces the worker like any other that died, and the other
workers keep serving.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from gevent import monkey

from x15g.observability.inflight import current as inflight

STALLED_EXIT = 70  # EX_SOFTWARE: the worker ended itself because its hub stalled
_sleep = monkey.get_original("time", "sleep")
_start_thread = monkey.get_original("_thread", "start_new_thread")
_monotonic = time.monotonic
log = logging.getLogger("x15g.watchdog")


class Watchdog:
    """Start with `start(loop)` in the worker; `stop()` before a graceful exit."""

    def __init__(self, timeout: float, worker_id: int, last_words: Callable[[], None] | None = None) -> None:
        self.timeout = timeout
        self.worker_id = worker_id
        self.last_words = last_words  # run from the watchdog thread just before the exit
        self.interval = min(1.0, timeout / 4)
        self.beat = _monotonic()
        self.running = False
        self._timer: Any = None

    def start(self, loop: Any) -> None:
        self._timer = loop.timer(self.interval, self.interval, ref=False)
        self._timer.start(self._beat)
        self.running = True
        _start_thread(self._watch, ())

    def stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.stop()

    def _beat(self) -> None:
        self.beat = _monotonic()

    def _watch(self) -> None:
        suspect = False
        while self.running:
            _sleep(self.interval)
            stalled = _monotonic() - self.beat
            if stalled <= self.timeout:
                suspect = False
                continue
            if not suspect:
                suspect = True  # confirm on the next check
                continue
            if self.running:
                self._give_up(stalled)

    def _give_up(self, stalled: float) -> None:
        message = (f"worker {self.worker_id} (pid {os.getpid()}): event loop held for {stalled:.1f} s "
                   f"(--timeout {self.timeout:g}) by {inflight.describe()}; exiting so the master replaces it")
        _write_error(message)
        if self.last_words is not None:
            try:
                self.last_words()
            except Exception as exc:  # exit all the same: the hub is stuck
                _write_error(f"worker {self.worker_id}: before exiting: {exc!r}")
        os._exit(STALLED_EXIT)


def _write_error(message: str) -> None:
    """One error-log line from this thread without taking the handlers' locks (the stuck greenlet
    might hold one): format with each handler's formatter and write to its stream's descriptor."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    written = False
    for handler in logging.getLogger("x15g").handlers:
        stream: Any = getattr(handler, "stream", None)
        try:
            os.write(stream.fileno(), (handler.format(record) + "\n").encode("utf-8", "replace"))
            written = True
        except (AttributeError, OSError, ValueError):
            continue
    if not written:
        os.write(2, (message + "\n").encode("utf-8", "replace"))
