"""Plain clients of a real x15g over 127.0.0.1: one-shot GETs, raw-socket reads, load threads."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from typing import Any, Self

from tests.support.server import ServerProcess

BIG_SIZE = 4 * 1024 * 1024  # the hardening roots' big.bin: large enough to stay in flight


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


class ClientThreads:
    """Client threads that run until `stop()` (or the end of a `with` block): `stop_event` tells
    them to finish, `lock` guards the tallies they keep."""

    join_timeout = 15.0

    def __init__(self, threads: list[threading.Thread]) -> None:
        self.threads = threads
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(self.join_timeout)


class Hammer(ClientThreads):
    """Client threads sending GETs until stopped; counts successes, failures and retries.

    `fresh` threads open a new connection per request (they go through accept: the path a dying
    listener can break); `keepalive` threads reuse one connection and, like real clients (RFC 9112
    §9.3.1), retry an idempotent request once on a fresh connection when a REUSED connection closes
    before any byte of the answer (the server closed it as idle): that is a retry, not a failure.
    """

    def __init__(self, port: int, fresh: int = 4, keepalive: int = 4, path: str = "/hello.txt",
                 expect: bytes = b"hello, world\n") -> None:
        self.port, self.path, self.expect = port, path, expect
        self.ok = self.failed = self.retried = self.refused = 0
        self.errors: list[str] = []
        super().__init__([threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]
                         + [threading.Thread(target=self._keepalive, daemon=True) for _ in range(keepalive)])

    def _count(self, ok: bool, error: str = "") -> None:
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.failed += 1
                self.errors.append(error)

    def _refused(self) -> None:
        """connect() refused: no request was sent, so none failed; tests that need the port open
        throughout (reload, respawn) assert `refused == 0`."""
        with self.lock:
            self.refused += 1

    def _fresh(self) -> None:
        while not self.stop_event.is_set():
            try:
                status, body = get(self.port, self.path, timeout=10)
                self._count(status == 200 and body == self.expect, f"status {status}")
            except ConnectionRefusedError:
                self._refused()
            except (OSError, http.client.HTTPException) as exc:
                self._count(False, repr(exc))

    def _keepalive(self) -> None:
        conn = None
        while not self.stop_event.is_set():
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
                self._count(response.status == 200 and body == self.expect, f"status {response.status}")
                if response.will_close:
                    conn.close()
                    conn = None
            except ConnectionRefusedError:
                conn.close()
                conn = None
                self._refused()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn = None
                if reused:
                    with self.lock:
                        self.retried += 1
                else:
                    self._count(False, repr(exc))
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = None
                self._count(False, repr(exc))
        if conn is not None:
            conn.close()


def fetch(server: ServerProcess, path: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-case headers, body)."""
    conn = server.http()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def fetch_json(server: ServerProcess, path: str, **kwargs: Any) -> Any:
    status, _, body = fetch(server, path, **kwargs)
    assert status == 200, body
    return json.loads(body)
