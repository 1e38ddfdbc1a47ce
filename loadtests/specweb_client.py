"""The simulated connection's HTTP/1.1 client: one socket, one request at a time, Content-Length bodies.

Why not locust's FastHttpUser: profiling the suite (py-spy) showed most of the load generator's CPU
per operation in the layers between the user and the socket (geventhttpclient's user agent and
response objects, locust's response wrappers, and a getaddrinfo through gevent's thread pool for
every new connection, i.e. every 2.7 requests under §3.3). This client resolves the host once,
writes each request with one `sendall` and reads the answer with `recv_into` into a buffer sized
from Content-Length; the bytes it returns are the bytes received, so validation stays byte for
byte. The locustfile reports every request to locust's statistics itself.
"""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from gevent.monkey import get_original

_poll = get_original("select", "poll")  # a non-blocking readiness check, never a greenlet switch

MAX_HEAD = 64 * 1024  # an answer head larger than this is a protocol error


class ProtocolError(OSError):
    """The answer is not HTTP/1.1 this client can read (no Content-Length, head too large, ...)."""


@dataclass(slots=True)
class Answer:
    """One HTTP answer: status, header lines as (lowercase name, value), body, bytes on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytearray
    nbytes: int

    def values(self, name: str) -> list[str]:
        """Every value of header `name` (lowercase), in order."""
        return [v for k, v in self.headers if k == name]


def resolve(host_url: str) -> tuple[tuple, bytes]:
    """(socket address, Host header value) for `http://host[:port]`, resolved once."""
    parts = urlsplit(host_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("the SPECweb99-like suite speaks plain HTTP: host %r" % host_url)
    port = parts.port or 80
    family, _, _, _, addr = socket.getaddrinfo(parts.hostname, port, 0, socket.SOCK_STREAM)[0]
    return (family, addr), parts.netloc.encode("ascii")


class Connection:
    """The user's current TCP connection; `exchange` opens it when needed, `close` drops it."""

    def __init__(self, address: tuple, timeout: float) -> None:
        self.family, self.addr = address
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.opened = 0

    def exchange(self, request: bytes) -> Answer:
        """Send one complete request and read its answer (OSError on any network or protocol failure)."""
        sock = self.sock
        if sock is not None and _closed_by_peer(sock):
            self.close()  # the server closed it while we slept out the pacing (its keep-alive timeout)
            sock = None
        if sock is None:
            sock = self.sock = socket.socket(self.family, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(self.addr)
            self.opened += 1
        sock.sendall(request)
        return read_answer(sock)

    def close(self) -> None:
        """Close the connection (the next exchange opens a new one)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when an idle kept-alive connection is readable (EOF, a reset or stray bytes): not reusable."""
    poller = _poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def read_answer(sock: socket.socket) -> Answer:
    """Read one answer with a Content-Length body (every answer of the SPECweb99-like operations)."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("connection closed before the answer's head")
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > MAX_HEAD:
            raise ProtocolError("answer head larger than %d bytes" % MAX_HEAD)
    lines = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ProtocolError("bad status line %r" % lines[0][:80]) from None
    headers = []
    length = -1
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers.append((name, value))
        if name == "content-length":
            length = int(value) if value.isdigit() else -2
    if length < 0:
        raise ProtocolError("answer without a valid Content-Length")
    start = end + 4
    body = bytearray(length)
    have = min(len(buf) - start, length)
    body[:have] = buf[start:start + have]
    view = memoryview(body)
    while have < length:
        n = sock.recv_into(view[have:])
        if not n:
            raise ConnectionResetError("connection closed %d bytes into a %d-byte body" % (have, length))
        have += n
    return Answer(status, headers, body, start + length)
