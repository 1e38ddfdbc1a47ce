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


def settled_fds(pid: int) -> int:
    """The master's fd count once no worker is starting and no file is open for a moment: only its
    wakeup pipe's two ends are pipes then (a starting worker's ready pipe closes when it reports
    ready), and no metrics snapshot (`*.json`, `*.tmp`, written once a second) or /proc read is
    open. One listing decides both, so the count is of that settled moment; an fd left open for
    good on such a file never settles and fails the wait."""
    def links() -> list[str]:
        found = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except FileNotFoundError:  # closed meanwhile
                continue
        return found

    def settled() -> int:
        now = links()
        passing = any(link.endswith((".json", ".tmp")) or link.startswith("/proc/") for link in now)
        return len(now) if sum(link.startswith("pipe:") for link in now) == 2 and not passing else 0

    return wait_for(settled, 10, what="the master's descriptors settled")


def written_lines(path: Path) -> list[str]:
    """The lines of a log the server is still appending to, as far as they are written: a reader
    may see the end of a batch before all of it is there (a log shipper waits for the newline too)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[:text.rfind("\n") + 1].splitlines()
