"""Shared helpers for the hardening tests: worker PIDs, descriptor counts, plain clients.

Everything here talks to a real x15g process over 127.0.0.1 or reads /proc; nothing is mocked.
"""

from __future__ import annotations

import http.client
import os
import socket
import struct
import time
from pathlib import Path

BIG_SIZE = 4 * 1024 * 1024


def worker_pids(master: int) -> list[int]:
    """The master's children (the workers), from /proc/<pid>/task/*/children."""
    pids: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def wait_workers(master: int, count: int, timeout: float = 10.0, exclude: set[int] = frozenset()) -> list[int]:
    """Wait until `count` workers (none in `exclude`) exist; returns their PIDs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in worker_pids(master) if p not in exclude]
        if len(pids) >= count:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"{count} workers not up within {timeout}s: {worker_pids(master)}")


def fd_count(pid: int) -> int:
    """Open descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def get(port: int, path: str = "/", timeout: float = 5.0, headers: dict | None = None) -> tuple[int, bytes]:
    """One GET on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def reset_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN (a client that aborts)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_until_close(sock: socket.socket, timeout: float = 5.0, limit: int = 64 << 20) -> tuple[bytes, bool]:
    """Read until EOF/reset or `timeout`; (data, closed) where closed says the server ended it."""
    sock.settimeout(timeout)
    chunks = []
    total = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and total < limit:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), False
        except ConnectionResetError:
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)
        total += len(data)
    return b"".join(chunks), False


def statuses(data: bytes) -> list[int]:
    """Status codes of every response head found in `data` (pipelined answers)."""
    found = []
    start = 0
    while True:
        at = data.find(b"HTTP/1.", start)
        if at < 0 or at + 12 > len(data):
            return found
        line_end = data.find(b"\r\n", at)
        line = data[at:line_end]
        parts = line.split(b" ")
        if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) == 3:
            found.append(int(parts[1]))
        start = at + 8


def wait_for(predicate, timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll `predicate` until true or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
