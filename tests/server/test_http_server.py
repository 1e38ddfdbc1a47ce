"""HTTP/1.1 behaviour of a real x15g process over real sockets (http.client and raw bytes)."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, raw_exchange


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split raw bytes holding several responses with Content-Length bodies."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


def test_get_keepalive_and_headers(shared_server: ServerProcess, shared_docroot: Path) -> None:
    conn = shared_server.http()
    for _ in range(3):
        conn.request("GET", "/hello.txt")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"hello, world\n"
        assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
        assert response.getheader("Server").startswith("x15g/")
        assert response.getheader("Date").endswith(" GMT")
        assert response.getheader("ETag").startswith('"')
        assert response.getheader("Connection") is None  # HTTP/1.1 keep-alive is the default
    conn.close()


def test_pipelined_requests_answered_in_order(shared_server: ServerProcess) -> None:
    payload = (b"GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n"
               b"HEAD /one_k.bin HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /sub/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = raw_exchange(shared_server.port, payload)
    heads = data.split(b"HTTP/1.1 ")[1:]
    assert [h[:3] for h in heads] == [b"200", b"200", b"404", b"200"]
    assert b"hello, world\n" in heads[0]
    assert b"Content-Length: 1024\r\n" in heads[1] and heads[1].endswith(b"\r\n\r\n")
    assert heads[3].endswith(b"<p>sub</p>\n") and b"Connection: close" in heads[3]


@pytest.mark.parametrize("version, connection, stays_open", [
    (b"HTTP/1.1", b"", True),
    (b"HTTP/1.1", b"Connection: close\r\n", False),
    (b"HTTP/1.1", b"Connection: Keep-Alive, CLOSE\r\n", False),
    (b"HTTP/1.0", b"", False),
    (b"HTTP/1.0", b"Connection: keep-alive\r\n", True),
])
def test_connection_persistence(shared_server: ServerProcess, version: bytes, connection: bytes, stays_open: bool) -> None:
    with shared_server.connect(timeout=3) as sock:
        sock.sendall(b"GET /hello.txt " + version + b"\r\nHost: a\r\n" + connection + b"\r\n")
        data = b""
        while b"hello, world\n" not in data:
            data += sock.recv(4096)
        if not stays_open:
            assert sock.recv(1) == b""  # closed (a hang is the 3 s timeout)
            return
        if version == b"HTTP/1.0":
            assert b"Connection: keep-alive" in data
        # open: a second request on it is answered (instead of waiting for a close that never comes)
        sock.sendall(b"GET /hello.txt " + version + b"\r\nHost: a\r\n" + connection + b"\r\n")
        again = b""
        while b"hello, world\n" not in again:
            chunk = sock.recv(4096)
            assert chunk, "closed instead of answering a second request"
            again += chunk
        assert again.startswith(b"HTTP/1.1 200 ")


def test_head_has_headers_but_no_body(shared_server: ServerProcess) -> None:
    data = raw_exchange(shared_server.port, b"HEAD /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % (3 * 1024 * 1024 + 17) in head
    assert body == b""


def test_large_file_by_sendfile_is_exact(shared_server: ServerProcess, shared_docroot: Path) -> None:
    conn = shared_server.http()
    conn.request("GET", "/big.bin")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == (shared_docroot / "big.bin").read_bytes()


@pytest.mark.parametrize("range_header, status, expected", [
    ("bytes=0-0", 206, slice(0, 1)),
    ("bytes=10-19", 206, slice(10, 20)),
    ("bytes=-5", 206, slice(1019, 1024)),
    ("bytes=1000-", 206, slice(1000, 1024)),
    ("bytes=0-99999", 206, slice(0, 1024)),
    ("bytes=5000-6000", 416, None),
    ("items=0-5", 200, slice(0, 1024)),
])
def test_ranges(shared_server: ServerProcess, shared_docroot: Path, range_header: str, status: int, expected: slice | None) -> None:
    content = (shared_docroot / "one_k.bin").read_bytes()
    conn = shared_server.http()
    conn.request("GET", "/one_k.bin", headers={"Range": range_header})
    response = conn.getresponse()
    body = response.read()
    assert response.status == status
    if status == 416:
        assert response.getheader("Content-Range") == "bytes */1024"
        assert response.getheader("ETag")
    else:
        assert body == content[expected]
    if status == 206:
        assert response.getheader("Content-Range") == f"bytes {expected.start}-{expected.stop - 1}/1024"


def test_multiple_ranges_are_multipart(shared_server: ServerProcess, shared_docroot: Path) -> None:
    content = (shared_docroot / "big.bin").read_bytes()
    conn = shared_server.http()
    conn.request("GET", "/big.bin", headers={"Range": "bytes=0-9,2000000-2000009"})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 206
    ctype = response.getheader("Content-Type")
    assert ctype.startswith("multipart/byteranges; boundary=")
    assert content[0:10] in body and content[2000000:2000010] in body
    assert int(response.getheader("Content-Length")) == len(body)


def test_conditional_get(shared_server: ServerProcess) -> None:
    conn = shared_server.http()
    conn.request("GET", "/hello.txt")
    first = conn.getresponse()
    first.read()
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    for headers, status in [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": "W/" + etag}, 304),  # weak comparison, RFC 9110 §13.1.2
        ({"If-None-Match": '"other"'}, 200),
        ({"If-Modified-Since": modified}, 304),
        ({"If-Match": '"other"'}, 412),
        ({"If-Match": etag}, 200),
        ({"Range": "bytes=0-1", "If-Range": etag}, 206),
        ({"Range": "bytes=0-1", "If-Range": '"stale"'}, 200),
    ]:
        conn.request("GET", "/hello.txt", headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == status, headers
        if status == 304:
            assert body == b"" and response.getheader("ETag") == etag


@pytest.mark.parametrize("path, statuses", [
    ("/../../etc/passwd", {400, 403, 404}),
    ("/%2e%2e/%2e%2e/etc/passwd", {400, 403, 404}),
    ("/sub/..%2f..%2fetc/passwd", {400, 403, 404}),
    ("/hello.txt%00.html", {400, 404}),
    ("/.secret", {403, 404}),
    ("/sub%5c..%5c.secret", {400, 403, 404}),
])
def test_traversal_refused(shared_server: ServerProcess, path: str, statuses: set[int]) -> None:
    data = raw_exchange(shared_server.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    status = int(data.split(b" ", 2)[1])
    assert status in statuses
    assert b"root:" not in data and b"TOPSECRET" not in data


def test_directory_redirect_and_index(shared_server: ServerProcess) -> None:
    conn = shared_server.http()
    conn.request("GET", "/sub?x=1")
    response = conn.getresponse()
    response.read()
    assert response.status == 301
    assert response.getheader("Location") == "/sub/?x=1"
    conn.request("GET", "/sub/")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b"<p>sub</p>\n"


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"BREW /pot HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 501),
    (b"DELETE /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 405),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Long: " + b"b" * 70000 + b"\r\n\r\n", 431),
    (b"POST /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"POST /hello.txt HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
])
def test_bad_requests_get_clear_status(shared_server: ServerProcess, request_bytes: bytes, status: int) -> None:
    data = raw_exchange(shared_server.port, request_bytes)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Traceback" not in data and len(body) < 200
    if status == 405:
        assert b"Allow: GET, HEAD" in head


def test_body_too_large_is_413(docroot: Path) -> None:
    with ServerProcess(docroot, "--max-body-size", "100") as proc:
        data = raw_exchange(proc.port, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        assert data.startswith(b"HTTP/1.1 413 ")


def test_expect_100_continue_and_chunked_body(shared_server: ServerProcess) -> None:
    with shared_server.connect(timeout=5) as sock:
        sock.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        # a static file wants no body: the final answer at once, no 100 (RFC 9110 §10.1.1)
        assert sock.recv(1000).startswith(b"HTTP/1.1 405 ")
        sock.sendall(b"abcd")  # a client may send it anyway: dropped, the connection goes on
        # chunked body with a trailer: read fully, then the connection stays usable
        sock.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while b"hello, world\n" not in data and time.monotonic() < deadline:
            data += sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 405 ") and b"HTTP/1.1 200 OK" in data


def test_options_star_and_absolute_form(shared_server: ServerProcess) -> None:
    data = raw_exchange(shared_server.port, b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and b"Allow: " in data
    data = raw_exchange(shared_server.port, b"GET http://example.test/hello.txt HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello, world\n")


def test_header_timeout_drops_a_slow_head(docroot: Path) -> None:
    with ServerProcess(docroot, "--header-timeout", "1") as proc:
        with proc.connect(timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            started = time.monotonic()
            data = sock.recv(1000)
            assert data.startswith(b"HTTP/1.1 408 ") or data == b""
            assert time.monotonic() - started < 4


def test_hundred_concurrent_keepalive_clients(shared_server: ServerProcess, shared_docroot: Path) -> None:
    expected = (shared_docroot / "one_k.bin").read_bytes()
    failures: list[str] = []

    def client() -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=20)
            for _ in range(20):
                conn.request("GET", "/one_k.bin")
                response = conn.getresponse()
                if response.status != 200 or response.read() != expected:
                    failures.append("bad answer")
            conn.close()
        except OSError as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
