"""Runners: reused greenlets, the bound, join and kill (in-process, on a real gevent hub)."""

from __future__ import annotations

import gevent
from gevent import getcurrent
from gevent.event import Event

from x15g.server.runners import Runners


class Job:
    def __init__(self, gate: Event | None = None, fail: bool = False) -> None:
        self.gate = gate
        self.fail = fail
        self.ran_in = None
        self.finished = False

    def run(self) -> None:
        self.ran_in = getcurrent()
        try:
            if self.gate is not None:
                self.gate.wait()
            if self.fail:
                raise KeyboardInterrupt  # a BaseException must not reach the hub
        finally:
            self.finished = True


def test_finished_runners_take_the_next_job() -> None:
    runners = Runners(10)
    first = Job()
    runners.start(first)
    assert runners.join(1)
    second = Job()
    runners.start(second)
    assert runners.join(1)
    assert first.finished and second.finished
    assert first.ran_in is second.ran_in  # the same greenlet, parked in between


def test_bound_and_wait_available() -> None:
    runners = Runners(2)
    gate = Event()
    jobs = [Job(gate), Job(gate)]
    for job in jobs:
        runners.start(job)
    gevent.sleep(0)
    assert runners.full() and len(runners) == 2
    waiter = gevent.spawn(runners.wait_available)
    gevent.sleep(0.05)
    assert not waiter.ready()
    gate.set()
    waiter.join(1)
    assert waiter.ready() and runners.join(1) and len(runners) == 0


def test_kill_ends_running_jobs_with_their_finally_blocks() -> None:
    runners = Runners(5)
    jobs = [Job(Event()) for _ in range(3)]
    for job in jobs:
        runners.start(job)
    gevent.sleep(0)
    assert not runners.join(0.05)
    runners.kill(timeout=1)
    assert all(job.finished for job in jobs) and len(runners) == 0
    after = Job()
    runners.start(after)  # killed runners are not reused
    assert runners.join(1) and after.finished and after.ran_in not in {job.ran_in for job in jobs}


def test_a_job_raising_a_base_exception_costs_only_its_runner() -> None:
    runners = Runners(5)
    bad = Job(fail=True)
    runners.start(bad)
    assert runners.join(1) and bad.finished
    good = Job()
    runners.start(good)
    assert runners.join(1) and good.finished


def test_idle_runners_beyond_keep_idle_end() -> None:
    runners = Runners(10, keep_idle=1)
    gate = Event()
    jobs = [Job(gate) for _ in range(3)]
    for job in jobs:
        runners.start(job)
    gevent.sleep(0)
    gate.set()
    assert runners.join(1)
    assert sum(not job.ran_in.dead for job in jobs) == 1
