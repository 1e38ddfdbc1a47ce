"""`--isolate` over reloads and worker deaths, through a real x15g master with two workers: no
handler process outlives its worker, each worker keeps its handlers (and one spare) and no
more, the master's descriptors stay where they were, and the handlers of every new generation
answer. Runs as root, like the other isolation tests."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.clients import fetch
from tests.support.docroots import make_docroot
from tests.support.server import APP_ENV, ServerProcess
from tests.support.waiting import settled_fds, wait_for, wait_workers, worker_pids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the isolate user needs the server started as root")

CYCLES = int(os.environ.get("X15G_TEST_CYCLES", "8"))
PROCS = 2  # --isolate-procs: each worker has these and one spare


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


def handlers_of(workers: list[int]) -> set[int]:
    return {pid for worker in workers for pid in worker_pids(worker) if alive(pid)}


def settled(server: ServerProcess, workers: int) -> tuple[list[int], set[int]]:
    """The workers and their handlers once every worker has its PROCS handlers and its spare."""
    def ready():
        pids = [p for p in worker_pids(server.pid) if alive(p)]
        if len(pids) != workers:
            return None
        handlers = [[p for p in worker_pids(w) if alive(p)] for w in pids]
        return (pids, {p for h in handlers for p in h}) if all(len(h) == PROCS + 1 for h in handlers) else None

    return wait_for(ready, timeout=30, what="every worker with its handlers")


def whoami(server: ServerProcess) -> int:
    """The pid of the handler that answered."""
    status, _, body = fetch(server, "/whoami")
    assert status == 200, body
    uid, _, pid = body.decode().split()
    assert uid == "65534"
    return int(pid)


def test_reloads_and_worker_deaths_leave_no_handler_behind(tmp_path) -> None:
    root = make_docroot(tmp_path)
    with ServerProcess(root, "--wsgi", "tests.isolate.apps:escape", "--isolate", "--isolate-procs", str(PROCS),
                       workers=2, env=APP_ENV) as server:
        wait_workers(server.pid, 2)
        workers, handlers = settled(server, 2)
        seen = set(handlers)
        fds = settled_fds(server.pid)
        for cycle in range(CYCLES):
            if cycle % 2:
                os.kill(min(workers), signal.SIGKILL)  # its handlers see the control socket close
            else:
                server.signal(signal.SIGHUP)
            wait_for(lambda: not set(workers) & set(worker_pids(server.pid)) if cycle % 2 == 0
                     else min(workers) not in worker_pids(server.pid), timeout=30, what="the workers replaced")
            workers, handlers = settled(server, 2)
            seen |= handlers
            assert whoami(server) in handlers
        # every handler of a worker that is gone is gone too (none orphaned, none left a zombie)
        wait_for(lambda: not {p for p in seen - handlers if alive(p)}, timeout=10,
                 what="the old generations' handlers gone")
        assert len(seen) >= (CYCLES + 1) * (PROCS + 1)
        assert settled_fds(server.pid) == fds  # the master's
    assert not {p for p in seen if alive(p)}  # each worker stopped and reaped its handlers before it exited
