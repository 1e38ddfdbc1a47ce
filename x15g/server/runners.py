"""Connection runners: a bounded set of greenlets that serve one connection after another.

gevent's Pool spawns a new Greenlet per connection. With `Connection: close` that birth and death
was the largest Python cost of a request: the Greenlet object, the pool's links, and for every new
greenlet a fresh Python frame stack that CPython 3.11 maps and unmaps (an mmap, a munmap and page
faults per connection, seen with strace and perf). A runner is a plain greenlet whose parent is
the hub; when its connection ends it parks in the hub and the next accepted connection is switched
into it. At most `size` run at once (the worker's backpressure bound); up to `keep_idle` parked
runners are kept, the others end.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from gevent import get_hub, getcurrent
from gevent.event import Event
from greenlet import GreenletExit, greenlet

log = logging.getLogger("x15g.runners")


class Job(Protocol):
    def run(self) -> None: ...


class Runners:
    """Run `Job`s (connections) in reused greenlets, at most `size` at once."""

    def __init__(self, size: int, keep_idle: int = 256) -> None:
        self.size = size
        self.keep_idle = keep_idle
        self._busy: set[Any] = set()
        self._idle: list[Any] = []
        self._hub = get_hub()
        self._schedule = self._hub.loop.run_callback
        self._slot_free = Event()
        self._slot_free.set()
        self._all_done = Event()
        self._all_done.set()

    def __len__(self) -> int:
        """Jobs running now."""
        return len(self._busy)

    def full(self) -> bool:
        return len(self._busy) >= self.size

    def wait_available(self) -> None:
        """Block the calling greenlet until a job may start."""
        while len(self._busy) >= self.size:
            self._slot_free.clear()
            self._slot_free.wait()

    def start(self, job: Job) -> None:
        """Run `job.run()` in a runner as soon as the hub gets to it (like Greenlet.start)."""
        runner = self._idle.pop() if self._idle else greenlet(self._run, parent=self._hub)
        self._busy.add(runner)
        self._all_done.clear()
        self._schedule(runner.switch, job)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no job runs; False if `timeout` passed first."""
        return self._all_done.wait(timeout)

    def kill(self, timeout: float = 1.0) -> None:
        """End every running job with GreenletExit (its `finally` blocks run), wait up to `timeout`."""
        for runner in list(self._busy):
            self._schedule(runner.throw, GreenletExit)
        self.join(timeout)

    def _run(self, job: Job) -> None:
        me = getcurrent()
        try:
            while True:
                try:
                    job.run()
                finally:
                    self._finished(me)
                if len(self._idle) >= self.keep_idle:
                    return
                self._idle.append(me)
                job = self._hub.switch()  # parked until `start` hands over the next job
        except GreenletExit:
            pass
        except BaseException:  # a dying greenlet would raise into the hub: never let it
            log.exception("connection runner failed")
        finally:
            if me in self._idle:  # killed while parked (kill raced the end of its job)
                self._idle.remove(me)

    def _finished(self, runner: Any) -> None:
        busy = self._busy
        busy.discard(runner)
        if not self._slot_free.is_set():
            self._slot_free.set()
        if not busy:
            self._all_done.set()
