"""Streaming WSGI answers through a real x15g process: each chunk goes out as the app makes it,
a large generated body is not held in memory, and close() is always called."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.clients import fetch
from tests.support.server import APP_ENV, ServerProcess
from tests.support.waiting import wait_for


@pytest.fixture
def server(docroot: Path):
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:streaming", env=APP_ENV) as proc:
        yield proc


def _read_until(sock: socket.socket, marker: bytes, got: bytes = b"") -> bytes:
    while marker not in got:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return got


def test_each_chunk_reaches_the_client_before_the_app_makes_the_next(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /gated/a HTTP/1.1\r\nHost: x\r\n\r\n")
        got = _read_until(sock, b"first\n")
        assert b"Transfer-Encoding: chunked" in got and b"first\n" in got  # while the app still waits
        assert b"second" not in got
        assert fetch(server, "/open/a")[0] == 200  # the same worker serves others meanwhile
        got = _read_until(sock, b"0\r\n\r\n", got)
        assert b"second\n" in got and got.endswith(b"0\r\n\r\n")
        assert fetch(server, "/closed/a")[2] == b"yes"
        sock.sendall(b"GET /open/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # still keep-alive
        assert _read_until(sock, b"ok\n").endswith(b"ok\n")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_large_generated_body_streams_in_bounded_memory(server: ServerProcess) -> None:
    pid = int(fetch(server, "/pid")[2])
    idle = _rss_kib(pid)
    total = 256 * 1024 * 1024
    peak = idle
    received = 0
    with server.connect(timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big?%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % total)
        head = _read_until(sock, b"\r\n\r\n")
        received = len(head.partition(b"\r\n\r\n")[2])
        assert b"Content-Length: %d" % total in head
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if received % (16 << 20) < len(data):
                peak = max(peak, _rss_kib(pid))
    assert received == total
    assert peak - idle < 64 * 1024, f"worker RSS grew {(peak - idle) // 1024} MiB while streaming"


def test_close_is_called_when_the_client_goes_away_mid_stream(server: ServerProcess) -> None:
    sock = server.connect()
    sock.sendall(b"GET /gated/b HTTP/1.1\r\nHost: x\r\n\r\n")
    _read_until(sock, b"first\n")
    sock.close()  # gone while the generator waits
    assert fetch(server, "/open/b")[0] == 200
    wait_for(lambda: fetch(server, "/closed/b")[2] == b"yes", timeout=10)
    assert "Traceback" not in server.log()


def test_head_of_a_streamed_answer_sends_no_body_and_closes_the_generator(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"HEAD /gated/c HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = _read_until(sock, b"Connection: close")
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding" not in head
        assert rest.startswith(b"HTTP/1.1 200")  # the next answer follows at once: no body for HEAD
    wait_for(lambda: fetch(server, "/closed/c")[2] == b"yes", timeout=5)
