"""A cold open or a cold read runs in the threadpool: the hub keeps serving cached files meanwhile.

A real gevent hub and threadpool; the DiskIO used here makes every call it runs slow (a blocking
`time.sleep` inside the worker thread, standing for a disk that takes its time). While one
greenlet waits for such a call, another greenlet must keep answering cached requests.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import gevent
import pytest

from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.http.messages import Request
from x15g.static import residency
from x15g.static.responder import StaticResponder

DELAY = 0.2  # s per slow call; a cold open makes several


class SlowDisk(DiskIO):
    """DiskIO whose calls take DELAY seconds in the threadpool once `slow` is set."""

    slow = False

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        if not self.slow:
            return super().run(func, *args)

        def slow_call() -> Any:
            time.sleep(DELAY)  # blocks only the pool thread (no monkey-patching in tests)
            return func(*args)

        return super().run(slow_call)


def get(path: bytes) -> Request:
    return Request("GET", path, path, b"", 11, {}, True)


def serve_cached_while(static: StaticResponder, slow_path: bytes) -> tuple[float, int, int]:
    """Run the slow request in one greenlet and count cached answers from another meanwhile."""
    served = 0
    done = False

    def slow() -> float:
        started = time.monotonic()
        response = static.respond(get(slow_path))
        if response.release is not None:
            response.release()
        return time.monotonic() - started

    def cached() -> None:
        nonlocal served
        while not done:
            assert static.respond(get(b"/small.txt")).status == 200
            served += 1
            # A real connection yields on its socket, which lets the loop poll; sleep(0) alone
            # only runs callbacks, so now and then yield on a timer for the loop to poll too
            # (the pool thread's result arrives through it).
            gevent.sleep(0.001 if served % 64 == 0 else 0)

    worker = gevent.spawn(cached)
    slow_greenlet = gevent.spawn(slow)
    elapsed = slow_greenlet.get(timeout=10)
    served_during = served
    done = True
    worker.join(timeout=5)
    return elapsed, served_during, static.cache.hits


@pytest.fixture()
def static(tmp_path: Path) -> StaticResponder:
    (tmp_path / "small.txt").write_bytes(b"small")
    with open(tmp_path / "big.bin", "wb") as f:
        f.write(os.urandom(1024 * 1024))
        f.flush()
        os.fsync(f.fileno())
    settings = default_settings(root=str(tmp_path), small_file_size=1024, cache_revalidate=60.0)
    responder = StaticResponder(settings, SlowDisk(threads=2))
    responder.respond(get(b"/small.txt"))  # cached before the disk turns slow
    return responder


@pytest.mark.timeout(30)
def test_hub_serves_while_a_cold_open_is_in_the_threadpool(static: StaticResponder) -> None:
    static.disk.slow = True
    elapsed, served, hits = serve_cached_while(static, b"/big.bin")
    assert elapsed >= DELAY * 0.9  # the open really waited on the "disk"
    assert served > 100, f"only {served} cached answers while a cold open ran"
    assert hits >= served


@pytest.mark.timeout(30)
def test_hub_serves_while_a_cold_range_is_warmed(static: StaticResponder) -> None:
    first = static.respond(get(b"/big.bin"))  # opened while the disk is fast
    first.release()
    entry = static.cache.get(b"/big.bin")
    entry.resident_until = 0.0
    os.posix_fadvise(entry.fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if residency.probe(entry.fd, 0, entry.size) is not False:
        pytest.skip("this filesystem cannot report page-cache residency")
    static.disk.slow = True
    elapsed, served, _ = serve_cached_while(static, b"/big.bin")
    assert static.cache.warms == 1
    assert elapsed >= DELAY * 0.9
    assert served > 100, f"only {served} cached answers while a cold range was warmed"
    assert residency.probe(entry.fd, 0, entry.size) is True
