"""Request bodies read as the app asks for them (wsgi.input streams from the socket), and
answers that need no body sent before it arrived, through a real x15g process."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from tests.support.clients import fetch
from tests.support.server import APP_ENV, ServerProcess


@pytest.fixture
def server(docroot: Path):
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:streaming", "--wsgi-prefix", "/app",
                       "--max-body-size", str(200 << 20), "--body-timeout", "60", env=APP_ENV) as proc:
        yield proc


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


_unread: dict[int, bytes] = {}  # bytes past the last answer read from each socket (pipelining)


def _answer(sock: socket.socket) -> bytes:
    """The next whole answer (with a Content-Length body) from `sock`."""
    got = _unread.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in got:
        data = sock.recv(65536)
        assert data, got
        got += data
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        data = sock.recv(65536)
        assert data
        body += data
    _unread[sock.fileno()] = body[length:]
    return head + b"\r\n\r\n" + body[:length]


def test_a_100_mib_upload_streams_through_in_bounded_memory(server: ServerProcess) -> None:
    pid = int(fetch(server, "/app/pid")[2])
    idle = _rss_kib(pid)
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    total = 100 << 20
    peak = idle
    with server.connect(timeout=60) as sock:
        sock.sendall(b"POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        for i in range(100):
            sock.sendall(block)
            digest.update(block)
            if i % 10 == 9:
                peak = max(peak, _rss_kib(pid))
        answer = _answer(sock)
    assert answer.endswith(b"%d %s" % (total, digest.hexdigest().encode()))
    assert peak - idle < 64 * 1024, f"worker RSS grew {(peak - idle) // 1024} MiB during the upload"


def test_a_chunked_upload_streams_the_same(server: ServerProcess) -> None:
    data = os.urandom(3 << 20)
    with server.connect() as sock:
        sock.sendall(b"POST /app/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(data), 100_000):
            piece = data[start:start + 100_000]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
        assert _answer(sock).endswith(b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode()))


def test_a_static_file_answers_a_post_before_its_body(server: ServerProcess) -> None:
    """issue 13.7: Content-Length 17914 announced, 8 KiB sent, then silence: 405 at once (the
    server would otherwise wait up to --body-timeout 60 s for the rest)."""
    with server.connect(timeout=10) as sock:
        sock.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 17914\r\n\r\n" + b"a" * 8192)
        assert _answer(sock).startswith(b"HTTP/1.1 405")


def test_an_unread_small_body_is_dropped_and_the_connection_goes_on(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"b" * 100 +
                     b"POST /app/half HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n" + b"0123456789" * 3 +
                     b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined, bodies half read
        assert _answer(sock).startswith(b"HTTP/1.1 405")
        assert _answer(sock).endswith(b"\r\n\r\n0123456789")
        assert _answer(sock).endswith(b"hello, world\n")


def test_expect_continue_is_sent_only_when_the_app_reads(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert _answer(sock).endswith(b"5 " + hashlib.sha256(b"hello").hexdigest().encode())
        sock.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 405")  # no 100 first: the body is not wanted


def test_readline_and_iteration_over_the_body(server: ServerProcess) -> None:
    status, _, body = fetch(server, "/app/lines", method="POST", body=b"one\ntwo\nthree")
    assert (status, body) == (200, b"one|two|three")


def test_too_large_bodies_are_413(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:streaming", "--wsgi-prefix", "/app",
                       "--max-body-size", "1000", env=APP_ENV) as server:
        with server.connect() as sock:
            sock.sendall(b"POST /app/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 413")  # at once, before any body
        with server.connect() as sock:
            sock.sendall(b"POST /app/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"400\r\n" + b"x" * 1024 + b"\r\n400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 413")
        assert fetch(server, "/app/pid")[0] == 200


def test_a_body_that_stops_coming_is_408_after_the_body_timeout(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:streaming", "--body-timeout", "1",
                       env=APP_ENV) as server:
        with server.connect() as sock:
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            assert _answer(sock).startswith(b"HTTP/1.1 408")
        assert fetch(server, "/pid")[0] == 200
