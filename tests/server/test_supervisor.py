"""The pre-fork master: respawn, reload under load, worker count signals, drain."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

from tests.serverproc import ServerProcess


def worker_pids(master: int) -> set[int]:
    with open(f"/proc/{master}/task/{master}/children") as f:
        return {int(pid) for pid in f.read().split()}


def wait_for(predicate, timeout: float = 10.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


class Hammer:
    """Client threads sending keep-alive GETs until stopped; counts failures."""

    def __init__(self, port: int, threads: int = 8) -> None:
        self.port = port
        self.ok = 0
        self.retried = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> "Hammer":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self) -> None:
        conn = None
        reused = False
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    reused = False
                conn.request("GET", "/hello.txt")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or body != b"hello, world\n":
                    self.failures.append(f"status {response.status}")
                else:
                    self.ok += 1
                reused = True
                if response.getheader("Connection") == "close":
                    conn.close()
                    conn = None
            except OSError as exc:
                # Only a keep-alive connection closed between requests may be retried (clients do
                # that for idempotent requests, RFC 9112 §9.3.1); any error on a fresh
                # connection is a failed request.
                if not reused:
                    self.failures.append(repr(exc))
                self.retried += 1
                conn = None


def test_killed_worker_is_replaced_within_a_second(docroot: Path) -> None:
    with ServerProcess(docroot, workers=2) as proc:
        before = wait_for(lambda: len(worker_pids(proc.pid)) == 2 and worker_pids(proc.pid))
        victim = min(before)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        after = wait_for(lambda: (p := worker_pids(proc.pid)) and len(p) == 2 and victim not in p and p, timeout=3)
        assert after and victim not in after
        assert time.monotonic() - killed_at < 1.5
        conn = proc.http()
        for _ in range(20):
            conn = proc.http()
            conn.request("GET", "/hello.txt")
            assert conn.getresponse().read() == b"hello, world\n"
            conn.close()


def test_sighup_reload_under_load_fails_nothing(docroot: Path) -> None:
    with ServerProcess(docroot, workers=2) as proc:
        wait_for(lambda: len(worker_pids(proc.pid)) == 2)
        old = worker_pids(proc.pid)
        with Hammer(proc.port) as hammer:
            time.sleep(0.5)
            proc.signal(signal.SIGHUP)
            fresh = wait_for(lambda: (p := worker_pids(proc.pid)) and not (p & old) and len(p) == 2 and p, timeout=15)
            time.sleep(0.5)
        assert fresh and not (fresh & old)
        assert hammer.failures == []
        assert hammer.ok > 100


def test_ttin_ttou_change_worker_count(docroot: Path) -> None:
    with ServerProcess(docroot, workers=1) as proc:
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 1)
        proc.signal(signal.SIGTTIN)
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 2)
        proc.signal(signal.SIGTTOU)
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 1)


def test_sigterm_stops_master_and_workers(docroot: Path) -> None:
    proc = ServerProcess(docroot, workers=2).start()
    workers = wait_for(lambda: len(worker_pids(proc.pid)) == 2 and worker_pids(proc.pid))
    proc.signal(signal.SIGTERM)
    assert proc.proc.wait(15) == 0
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()
    proc.stop()
