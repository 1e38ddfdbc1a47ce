"""POST load against `x15g --specweb` for stop/reload tests, classifying every request it wrote.

Each client thread POSTs to /specweb99 with a unique `client` number, either on a new connection
per request (`fresh`) or on one keep-alive connection (`keepalive`). Every request ends in one of:
- acked: a 200 was read (the post log must hold it exactly once);
- refused: connect() was refused (nothing was sent: not a lost request);
- unanswered: the request was written in full, then the connection closed or reset without an
  answer: the client cannot tell whether it was processed. The stop must leave none.

"""

from __future__ import annotations

import socket
import threading
import time

from tests.support.clients import ClientThreads

FORM_HEAD = (b"POST /specweb99 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             b"Cookie: my_cookie=user_id=10003&last_ad=7\r\nContent-Length: %d\r\n%s\r\n")


def post_bytes(client: int, close: bool) -> bytes:
    body = b"urlroot=/file_set/&dir=%05d&class=%d&num=%d&client=%d" % (client % 2, client % 4, client % 9, client)
    return FORM_HEAD % (len(body), b"Connection: close\r\n" if close else b"") + body


def _recv(sock: socket.socket) -> bytes:
    """The next bytes, or b"" when the connection ended (EOF or reset)."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def read_answer(sock: socket.socket) -> tuple[int, bool] | None:
    """(status, server closes) of one answer, or None when the connection ended before a full one."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    closes = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            closes = True
    while len(rest) < length:
        chunk = _recv(sock)
        if not chunk:
            return None
        rest += chunk
    return status, closes


class StopLoad(ClientThreads):
    """`fresh` + `keepalive` threads POSTing until `stop()`."""

    join_timeout = 30.0

    def __init__(self, port: int, fresh: int = 10, keepalive: int = 0) -> None:
        self.port = port
        self.acked: list[int] = []
        self.unanswered: list[tuple[int, str]] = []
        self.other: list[tuple[int, str]] = []  # non-200 answers
        self.refused = 0
        self.unsent = 0  # the write failed: the client knows it was not delivered
        super().__init__([threading.Thread(target=self._run, args=(t, t >= fresh), daemon=True)
                          for t in range(fresh + keepalive)])

    def _record(self, client: int, answer: tuple[int, bool] | None, why: str = "closed") -> None:
        with self.lock:
            if answer is None:
                self.unanswered.append((client, why))
            elif answer[0] == 200:
                self.acked.append(client)
            else:
                self.other.append((client, str(answer[0])))

    def _connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", self.port), timeout=15)
        except (ConnectionRefusedError, ConnectionResetError):  # nothing was written
            with self.lock:
                self.refused += 1
            return None

    def _run(self, t: int, keepalive: bool) -> None:
        """POST until stopped: on one keep-alive connection, or on a new one per request."""
        i = 0
        sock = None
        while not self.stop_event.is_set():
            if sock is None:
                sock = self._connect()
                if sock is None:
                    time.sleep(0.005)
                    continue
            client = t * 1_000_000 + i
            i += 1
            try:
                sock.sendall(post_bytes(client, close=not keepalive))
            except OSError:  # not written in full: the client knows it was not delivered
                with self.lock:
                    self.unsent += 1
                answer = None
            else:
                answer = read_answer(sock)
                self._record(client, answer)
            if not keepalive or answer is None or answer[1]:
                sock.close()
                sock = None
        if sock is not None:
            sock.close()


def post_log_clients(path: str) -> list[int]:
    """The `client` numbers of every record in a post log (specweb99-like.md §5.6: 139-byte records)."""
    with open(path, "rb") as f:
        data = f.read()
    return [int(data[11 + 139 * i + 45:11 + 139 * i + 55]) for i in range(max(0, len(data) - 11) // 139)]
