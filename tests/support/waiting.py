"""Waiting on conditions (never on fixed sleeps) and reading a master's workers from /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy and return that; fail after `timeout`.

    The timeout is a bound against hangs, not a measurement: pick it generously (a loaded 2-core
    machine may take seconds for what takes milliseconds when quiet)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def worker_pids(master: int) -> list[int]:
    """The master's children (the workers), from /proc/<pid>/task/*/children."""
    pids: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def wait_workers(master: int, count: int, timeout: float = 15.0,
                 exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Wait until at least `count` workers not in `exclude` exist; returns their PIDs."""
    def settled() -> list[int]:
        pids = [p for p in worker_pids(master) if p not in exclude]
        return pids if len(pids) >= count else []
    return wait_for(settled, timeout, what=f"{count} workers of {master} (not {sorted(exclude)})")


def fd_count(pid: int) -> int:
    """Open descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))

