"""Request smuggling at the server level (issue 6; RFC 9112 §6.1, §6.3, §7.1, §11.2).

Every conflicting or broken framing is refused with 400 (501 for an unknown coding, 413/431 for
limits) and the connection is closed: the test reads until EOF and checks that exactly ONE answer
came back, so the request hidden after the framing (GET /sub/a.txt) never got its own response.
"""

from __future__ import annotations

import socket

import pytest

from tests.support.clients import get, read_until_close, statuses

SMUGGLED = b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"POST /hello.txt HTTP/1.1\r\nHost: x\r\n"

CASES = [
    ("cl+te", HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (400,)),
    ("te+cl", HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n", (400,)),
    ("duplicate-cl-differ", HEAD + b"Content-Length: 0\r\nContent-Length: 40\r\n\r\n", (400,)),
    ("cl-list-differ", HEAD + b"Content-Length: 0, 40\r\n\r\n", (400,)),
    ("cl-plus-sign", HEAD + b"Content-Length: +0\r\n\r\n", (400,)),
    ("cl-hex", HEAD + b"Content-Length: 0x0\r\n\r\n", (400,)),
    ("cl-space-inside", HEAD + b"Content-Length: 1 0\r\n\r\n", (400,)),
    ("te-in-http10", b"POST /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (400,)),
    ("te-gzip", HEAD + b"Transfer-Encoding: gzip\r\n\r\n", (400, 501)),
    ("te-chunked-twice", HEAD + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", (400, 501)),
    ("te-chunked-not-last", HEAD + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", (400, 501)),
    ("te-xchunked", HEAD + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", (400, 501)),
    ("te-space-before-colon", HEAD + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", (400,)),
    ("te-obs-fold", HEAD + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", (400,)),
    ("te-vertical-tab", HEAD + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", (400, 501)),
    ("chunk-size-non-hex", HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", (400,)),
    ("chunk-size-negative", HEAD + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", (400,)),
    ("chunk-size-0x", HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("chunk-size-overflow", HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\n", (400, 413)),
    ("chunk-size-space", HEAD + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", (400,)),
    ("chunk-lf-only", HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", (400,)),
    ("chunk-data-too-long", HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", (400,)),
    ("chunk-ext-huge", HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;" + b"a" * 100_000 + b"\r\nhello\r\n0\r\n\r\n",
     (400, 413)),
    # 2,000 one-byte chunks each with a 100-byte extension: 200 KB of framing for 2 KB of data.
    ("chunk-ext-many", HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + (b"1;" + b"e" * 100 + b"\r\nx\r\n") * 2_000
     + b"0\r\n\r\n", (400, 413)),
    ("chunk-ext-bare-cr", HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n", (400,)),
    ("trailer-obs-fold", HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n z\r\n\r\n", (400,)),
    ("nul-in-header", HEAD + b"X-A: b\x00c\r\nContent-Length: 0\r\n\r\n", (400,)),
    ("bare-cr-line-end", b"GET /hello.txt HTTP/1.1\rHost: x\r\n\r\n", (400,)),
]


@pytest.mark.parametrize("payload,allowed", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conflicting_framing_refused_and_closed(shared_server, payload: bytes, allowed: tuple) -> None:
    with shared_server.connect() as sock:
        try:
            sock.sendall(payload + SMUGGLED)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before everything was sent: fine, the answer is still read below
        data, closed = read_until_close(sock, 5.0)
    assert closed, "connection left open after a framing error"
    assert statuses(data) and statuses(data)[0] in allowed, data[:200]
    assert len(statuses(data)) == 1, f"a second answer leaked: {data!r}"


def test_worker_serves_after_all_smuggling_attempts(shared_server) -> None:
    for _, payload, _ in CASES:
        with shared_server.connect() as sock:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)  # EOF after the payload: the server answers, then closes
            except OSError:
                pass
            read_until_close(sock, 5.0)
    assert get(shared_server.port, "/sub/a.txt") == (200, b"a\n")
