"""Connection runners: a bounded set of greenlets that serve one connection after another.

gevent's Pool spawns a new Greenlet per connection. With `Connection: close` that birth and death
was the largest Python cost of a request: the Greenlet object, the pool's links, and for every new
greenlet a fresh Python frame stack that CPython 3.11 maps and unmaps (an mmap, a munmap and page
faults per connection, seen with strace and perf). A runner is a plain greenlet whose parent is
the hub; when its connection ends it parks in the hub and the next accepted connection is switched
into it. Up to `keep_idle` parked runners are kept, the others end.

A job holds a runner only while it works: a connection waiting idle for its next request gives
its runner back (`run` returns True: the job is *parked*, still open, with no greenlet: see
server/connection.py) and is `resume`d in a runner when it needs one again. At most `size` jobs
are open at once, running or parked (the worker's backpressure bound, --max-connections).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from gevent import get_hub, getcurrent
from gevent.event import Event
from greenlet import GreenletExit, greenlet

log = logging.getLogger("x15g.runners")


class Job(Protocol):
    def run(self) -> bool:
        """Work until the job ends (False) or parks without a greenlet (True: `resume` later)."""
        ...

    def abort(self) -> None:
        """End a parked job now (from the hub): a kill closes it without a greenlet."""
        ...


class Runners:
    """Run `Job`s (connections) in reused greenlets, at most `size` open at once."""

    def __init__(self, size: int, keep_idle: int = 256) -> None:
        self.size = size
        self.keep_idle = keep_idle
        self._jobs: set[Job] = set()  # open jobs, running or parked
        self._busy: dict[Any, Job] = {}  # runner -> the job it runs
        self._idle: list[Any] = []
        self._hub = get_hub()
        self._schedule = self._hub.loop.run_callback
        self._slot_free = Event()
        self._slot_free.set()
        self._all_done = Event()
        self._all_done.set()

    def __len__(self) -> int:
        """Jobs open now, running or parked."""
        return len(self._jobs)

    @property
    def running(self) -> int:
        """Jobs holding a runner now."""
        return len(self._busy)

    def full(self) -> bool:
        return len(self._jobs) >= self.size

    def wait_available(self) -> None:
        """Block the calling greenlet until a job may start."""
        while len(self._jobs) >= self.size:
            self._slot_free.clear()
            self._slot_free.wait()

    def start(self, job: Job) -> None:
        """Open `job` and run `job.run()` in a runner as soon as the hub gets to it (like
        Greenlet.start)."""
        self._jobs.add(job)
        self._all_done.clear()
        self._schedule(self._runner(job).switch, job)

    def resume(self, job: Job) -> None:
        """Run a parked `job` in a runner now; called from the hub (a watcher callback), which
        the runner switches back to when it waits or parks again."""
        self._runner(job).switch(job)

    def ended(self, job: Job) -> None:
        """A parked job closed without a runner (from the hub): free its slot."""
        self._jobs.discard(job)
        self._slot_freed()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no job is open; False if `timeout` passed first."""
        return self._all_done.wait(timeout)

    def kill(self, timeout: float = 1.0) -> None:
        """End every job: GreenletExit into the running ones (their `finally` blocks run), parked
        ones closed at once; wait up to `timeout`."""
        for runner in list(self._busy):
            self._schedule(runner.throw, GreenletExit)
        running = set(self._busy.values())
        for job in [j for j in self._jobs if j not in running]:
            job.abort()
        self.join(timeout)

    def _runner(self, job: Job) -> Any:
        runner = self._idle.pop() if self._idle else greenlet(self._run, parent=self._hub)
        self._busy[runner] = job
        return runner

    def _run(self, job: Job) -> None:
        me = getcurrent()
        try:
            while True:
                parked = False
                try:
                    parked = job.run()
                finally:
                    del self._busy[me]
                    if not parked:
                        self._jobs.discard(job)
                        self._slot_freed()
                if len(self._idle) >= self.keep_idle:
                    return
                self._idle.append(me)
                job = self._hub.switch()  # parked until `start` or `resume` hands over a job
        except GreenletExit:
            pass
        except BaseException:  # a dying greenlet would raise into the hub: never let it
            log.exception("connection runner failed")
        finally:
            if me in self._idle:  # killed while parked (kill raced the end of its job)
                self._idle.remove(me)

    def _slot_freed(self) -> None:
        if not self._slot_free.is_set():
            self._slot_free.set()
        if not self._jobs:
            self._all_done.set()
