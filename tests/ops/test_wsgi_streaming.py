"""Streaming WSGI answers through a real x15g process: each chunk goes out as the app makes it,
a large generated body is not held in memory, and close() is always called."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.clients import fetch, read_until_close, reset_close
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


def test_write_sends_before_the_app_returns(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /write-gated/w HTTP/1.1\r\nHost: x\r\n\r\n")
        got = _read_until(sock, b"first\n")
        assert b"Transfer-Encoding: chunked" in got and b"second" not in got  # the app still waits
        assert fetch(server, "/open/w")[0] == 200  # the worker serves others meanwhile
        got = _read_until(sock, b"0\r\n\r\n", got)
        assert b"second\n" in got and b"third\n" in got and got.endswith(b"0\r\n\r\n")
        wait_for(lambda: fetch(server, "/closed/w")[2] == b"yes", timeout=10)
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # still keep-alive
        assert b"HTTP/1.1 200" in _read_until(sock, b"Connection: close")


def test_an_app_that_writes_then_reads_its_body_gets_it(server: ServerProcess) -> None:
    """The client sends the body only after it saw the first write(): buffered writes would
    deadlock here; and the app reads wsgi.input from inside its write()-streamed call."""
    with server.connect() as sock:
        sock.sendall(b"POST /write-then-read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        got = _read_until(sock, b"first\n")
        assert got.startswith(b"HTTP/1.1 200")
        sock.sendall(b"hello")
        got = _read_until(sock, b"0\r\n\r\n", got)
        assert b"got hello" in got


def test_write_raises_in_the_app_when_the_client_went_away(server: ServerProcess) -> None:
    sock = server.connect()
    sock.sendall(b"GET /write-gated/g HTTP/1.1\r\nHost: x\r\n\r\n")
    _read_until(sock, b"first\n")
    reset_close(sock)  # the next write fails
    assert fetch(server, "/open/g")[0] == 200
    wait_for(lambda: fetch(server, "/closed/g")[2] == b"yes", timeout=10)
    assert fetch(server, "/pid")[0] == 200
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("path, sent", [
    ("/write-cl/10/20", b"x" * 10),  # more than declared: cut
    ("/write-cl/20/5", b"x" * 5),  # fewer: the connection closes after them
    ("/filelike-cl/10/20", b"y" * 10),
    ("/filelike-cl/20/5", b"y" * 5),
])
def test_the_apps_content_length_holds_for_write_and_file_likes(server: ServerProcess, path: str,
                                                                 sent: bytes) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        got, closed = read_until_close(sock, timeout=20)
    assert closed  # the client sees the cut or the truncation
    head, _, body = got.partition(b"\r\n\r\n")
    declared = int(path.split("/")[2])
    assert b"Content-Length: %d" % declared in head and b"Transfer-Encoding" not in head
    assert body == sent
