"""The simulated connection's HTTP client against a real socket server on 127.0.0.1: a kept-alive
connection the server closed while the user slept is replaced before the next request; bodies
arrive whole however the server splits them; an answer without Content-Length is refused."""

import socket
import threading

import pytest

from loadtests.specweb_client import Connection, ProtocolError, resolve

REQUEST = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class OneShotServer:
    """Answers each connection's first request with the next of `answers` (a list of byte chunks),
    then closes it, like a keep-alive timeout after an idle pause."""

    def __init__(self, answers):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answers = list(answers)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for chunks in self.answers:
            conn, _ = self.sock.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                for chunk in chunks:
                    conn.sendall(chunk)
            self.closed.set()

    def connection(self):
        address, _ = resolve("http://127.0.0.1:%d" % self.port)
        return Connection(address, 10.0)


def test_connection_closed_by_the_server_is_reopened():
    server = OneShotServer([[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
                            [b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 5\r\n\r\n", b"wor", b"ld"]])
    conn = server.connection()
    first = conn.exchange(REQUEST)
    assert (first.status, bytes(first.body), first.nbytes) == (200, b"hello", 43)
    assert server.closed.wait(10)
    second = conn.exchange(REQUEST)
    assert bytes(second.body) == b"world" and second.values("set-cookie") == ["a=1"]
    assert conn.opened == 2
    conn.close()


def test_answer_without_content_length_is_refused():
    server = OneShotServer([[b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody"]])
    conn = server.connection()
    with pytest.raises(ProtocolError):
        conn.exchange(REQUEST)
    conn.close()
