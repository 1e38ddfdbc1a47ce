"""A handler keeping a keep-alive connection (--isolate-hold) over a real x15g process: the
requests that follow are answered by it while they are its own, the rest (a static file) by the
worker; the access log stays complete; and the keep-alive timeout, the header timeout,
--isolate-timeout (504), the drain on SIGTERM and --max-requests all hold while a handler holds
the connection. Runs as root, like the other isolation tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

from tests.isolate.test_isolate_server import client_sockets
from tests.support.clients import fetch, read_until_close
from tests.support.docroots import make_docroot
from tests.support.server import APP_ENV, ServerProcess
from tests.support.waiting import wait_for, worker_pids, written_lines

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the isolate user needs the server started as root")

TIMEOUT = 3  # --isolate-timeout
HEADER_TIMEOUT = 2


def handler_pids(server: ServerProcess) -> list[int]:
    """The ready handlers of the (one) worker."""
    ready = {int(p) for p in re.findall(r"isolated handler (\d+) ready", server.log())}
    return [pid for worker in worker_pids(server.pid) for pid in worker_pids(worker) if pid in ready]


def held(server: ServerProcess) -> int:
    return sum(client_sockets(pid) for pid in handler_pids(server))


def start(base, *args: str, isolate: bool = True, access_log: bool = True) -> ServerProcess:
    root = make_docroot(base)
    isolation = ["--isolate", "--isolate-procs", "1"] if isolate else []
    logging = ["--access-log", str(base / "access.log")] if access_log else []
    server = ServerProcess(root, "--wsgi", "tests.isolate.apps:escape", *isolation, *logging, *args, env=APP_ENV)
    server.access_log = base / "access.log"
    server.start()
    if isolate:
        wait_for(lambda: handler_pids(server), timeout=30)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A hold longer than any test: a connection after an app answer stays in the handler."""
    with start(tmp_path_factory.mktemp("hold"), "--isolate-hold", "30", "--keepalive-timeout", "60",
               "--isolate-timeout", str(TIMEOUT), "--header-timeout", str(HEADER_TIMEOUT)) as proc:
        yield proc


def get(path: str, close: bool = False) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode()


class Answers:
    """Reads the answers on a client socket one by one (pipelined ones may share a recv)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self, what: str) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"closed {what}: {self.buffer!r}"
        self.buffer += chunk

    def next(self) -> tuple[int, dict[str, str], bytes]:
        """status, headers, body of the next answer (framed by Content-Length)."""
        while b"\r\n\r\n" not in self.buffer:
            self._more("before an answer")
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        self.buffer = rest
        while len(self.buffer) < length:
            self._more("inside a body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The one answer expected on `sock` now (nothing may follow it unasked)."""
    answers = Answers(sock)
    answer = answers.next()
    assert not answers.buffer, "more bytes than the answer: the next answer came unasked"
    return answer


def test_following_requests_are_answered_and_every_one_logged(server) -> None:
    with server.connect(timeout=20) as sock:
        sock.sendall(get("/whoami?a0"))
        status, _, body = read_answer(sock)
        assert status == 200 and body.startswith(b"65534 ")
        wait_for(lambda: held(server) == 1)  # the handler keeps it, waiting for the next request
        for path in ("/whoami?a1", "/hello.txt?a2", "/whoami?a3"):
            sock.sendall(get(path))
            status, _, body = read_answer(sock)
            assert status == 200
            assert body == b"hello, world\n" if "hello" in path else body.startswith(b"65534 "), (path, body)
        # pipelined: the handler answers its own in order and gives the static one back
        sock.sendall(get("/whoami?a4") + get("/hello.txt?a5") + get("/whoami?a6", close=True))
        reader = Answers(sock)
        answers = [reader.next() for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert answers[1][2] == b"hello, world\n" and answers[2][1]["connection"] == "close"
        assert sock.recv(1) == b""

    def ours() -> list[str]:
        return [line for line in written_lines(server.access_log) if "?a" in line]

    lines = wait_for(lambda: len(ours()) == 7 and ours())
    paths = [re.search(r'"GET (\S+) HTTP/1.1" 200 ', line).group(1) for line in lines]
    assert paths == ["/whoami?a0", "/whoami?a1", "/hello.txt?a2", "/whoami?a3", "/whoami?a4", "/hello.txt?a5",
                     "/whoami?a6"]
    # the same line whoever answered: the worker's accounting of the handler's report
    assert all(re.match(r'127\.0\.0\.1 - - \[[^]]+\] "GET \S+ HTTP/1\.1" 200 \d+ "-" "-"$', line) for line in lines)


def test_header_timeout_holds_on_a_held_connection(server) -> None:
    with server.connect(timeout=20) as sock:
        sock.sendall(get("/whoami"))
        assert read_answer(sock)[0] == 200
        wait_for(lambda: held(server) == 1)
        sent = time.monotonic()
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHo")  # and nothing more
        data, _ = read_until_close(sock, timeout=HEADER_TIMEOUT + 15)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - sent >= HEADER_TIMEOUT - 0.3  # the sweeper's resolution


def test_isolate_timeout_504_for_a_later_request_on_a_held_connection(server) -> None:
    with server.connect(timeout=30) as sock:
        sock.sendall(get("/sleep?0"))  # the same path: the app's at "/" (handler.Routes)
        assert read_answer(sock)[0] == 200
        wait_for(lambda: held(server) == 1)
        sent = time.monotonic()
        sock.sendall(get("/sleep?60"))
        data, _ = read_until_close(sock, timeout=TIMEOUT + 20)
    assert data.startswith(b"HTTP/1.1 504 "), data[:80]
    assert time.monotonic() - sent >= TIMEOUT - 0.3
    assert "a request after GET '/sleep?0'" in server.log()
    wait_for(lambda: handler_pids(server), timeout=30)  # the killed handler was replaced


def test_keepalive_timeout_holds_with_the_default_hold(tmp_path) -> None:
    with start(tmp_path, "--keepalive-timeout", "1") as server, server.connect(timeout=20) as sock:
        sock.sendall(get("/whoami"))
        assert read_answer(sock)[0] == 200
        answered = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server
        assert time.monotonic() - answered >= 1 - 0.3


def test_a_hold_as_long_as_the_keepalive_timeout_closes_in_the_handler(tmp_path) -> None:
    with start(tmp_path, "--keepalive-timeout", "1", "--isolate-hold", "5") as server, \
            server.connect(timeout=20) as sock:
        sock.sendall(get("/whoami"))
        assert read_answer(sock)[0] == 200
        answered = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - answered >= 1 - 0.3


def test_sigterm_drains_held_connections(tmp_path) -> None:
    """An in-flight request on a held connection is answered (Connection: close), an idle held
    connection is given back and closed, long before the hold or the graceful timeout ends."""
    server = start(tmp_path, "--isolate-hold", "60", "--keepalive-timeout", "60", "--graceful-timeout", "60")
    try:
        idle, busy = server.connect(timeout=30), server.connect(timeout=30)
        with idle, busy:
            for sock in (idle, busy):
                sock.sendall(get("/sleep?0"))
                assert read_answer(sock)[0] == 200
            wait_for(lambda: held(server) == 2)
            busy.sendall(get("/sleep?2"))
            stopped = time.monotonic()
            server.signal(signal.SIGTERM)
            status, headers, body = read_answer(busy)
            assert (status, body, headers["connection"]) == (200, b"slept", "close")
            assert busy.recv(1) == b"" and idle.recv(1) == b""
        assert server.proc.wait(30) == 0
        assert time.monotonic() - stopped < 30
        logged = re.findall(r'"GET (/sleep\S*) HTTP/1.1" 200 ', server.access_log.read_text())
        assert logged == ["/sleep?0", "/sleep?0", "/sleep?2"]
    finally:
        server.stop()


def test_max_requests_recycles_the_worker_with_a_held_connection(tmp_path) -> None:
    limit = 40
    server = start(tmp_path, "--isolate-hold", "60", "--keepalive-timeout", "60", "--max-requests", str(limit))
    try:
        first = worker_pids(server.pid)
        answered = 0
        with server.connect(timeout=30) as sock:
            deadline = time.monotonic() + 60
            headers: dict[str, str] = {}
            while headers.get("connection") != "close" and answered < 200_000 and time.monotonic() < deadline:
                sock.sendall(get("/whoami"))
                status, headers, _ = read_answer(sock)
                assert status == 200
                answered += 1
            assert headers.get("connection") == "close" and sock.recv(1) == b""
        assert answered >= limit
        wait_for(lambda: (now := worker_pids(server.pid)) and now != first, timeout=30)  # a fresh worker
        # every answer logged, by the old worker, before it exited
        assert server.access_log.read_text().count('"GET /whoami HTTP/1.1" 200 ') == answered
    finally:
        server.stop()


def test_a_busy_held_connection_is_logged_while_the_handler_keeps_it(server) -> None:
    """The handler's progress reports: the access log has every request of a held connection
    within about protocol.BATCH_SECONDS, though it never went back to the worker."""
    count = 600  # several batches of records
    with server.connect(timeout=20) as sock:
        for n in range(count):
            sock.sendall(get(f"/whoami?busy{n}"))
            assert read_answer(sock)[0] == 200

        def logged() -> list[str]:
            return re.findall(r'"GET /whoami\?busy(\d+) HTTP/1.1" 200 ', server.access_log.read_text())

        numbers = wait_for(lambda: len(logged()) == count and logged(), timeout=10)
        assert numbers == [str(n) for n in range(count)]
        assert held(server) == 1  # all logged while the handler holds the connection
        sock.sendall(get("/whoami?busy-last"))
        assert read_answer(sock)[0] == 200


def test_an_answer_the_socket_does_not_take_at_once_is_finished_on_a_held_connection(server) -> None:
    """Answered from the handler's hub (parked connection), the rest sent by a greenlet."""
    size = 8 * 1024 * 1024  # far more than the socket buffers
    with server.connect(timeout=20) as sock:
        sock.sendall(get("/whoami?big0"))
        assert read_answer(sock)[0] == 200
        wait_for(lambda: held(server) == 1)
        sock.sendall(get(f"/big?{size}"))
        status, _, body = read_answer(sock)
        assert status == 200 and body == b"x" * size
        sock.sendall(get("/whoami?big1"))
        assert read_answer(sock)[0] == 200
    wait_for(lambda: f'"GET /big?{size} HTTP/1.1" 200 {size} ' in server.access_log.read_text())


def test_no_stall_over_thousands_of_requests_on_held_connections(server) -> None:
    """Several clients at once, each on a held connection: none waits long for any answer
    (batches of records, memo renewals, progress reports never hold a connection up)."""
    import threading

    clients, each = 6, 500
    worst: list[float] = []
    failures: list[str] = []

    def client(number: int) -> None:
        slowest = 0.0
        try:
            with server.connect(timeout=20) as sock:
                for n in range(each):
                    began = time.monotonic()
                    sock.sendall(get(f"/whoami?c{number}-{n}"))
                    if read_answer(sock)[0] != 200:
                        failures.append(f"{number}-{n}")
                    slowest = max(slowest, time.monotonic() - began)
        except Exception as exc:
            failures.append(repr(exc))
        worst.append(slowest)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures and len(worst) == clients
    assert max(worst) < 1.0, worst  # generous: a loaded machine; a stall was tens of ms per batch


def test_repeated_heads_on_a_held_connection_each_keep_their_request_id(tmp_path) -> None:
    """Requests with the same head bytes (the handler's parser shares what it parsed) each get
    their own line, with the X-Request-ID their app call gave them."""
    import json

    count = 300
    server = start(tmp_path, "--isolate-hold", "30", "--keepalive-timeout", "60", "--access-log-format", "json")
    try:
        with server.connect(timeout=20) as sock:
            for _ in range(count + 1):
                sock.sendall(get("/whoami?same"))
                assert read_answer(sock)[0] == 200

            def records() -> list[dict]:
                return [json.loads(line) for line in written_lines(server.access_log) if "same" in line]

            lines = wait_for(lambda: len(records()) == count + 1 and records(), timeout=10)
        ids = [line.get("request_id") for line in lines]
        assert all(ids) and len(set(ids)) == count + 1, ids[:5]
        assert {line["status"] for line in lines} == {200}
    finally:
        server.stop()


def read_head(sock: socket.socket) -> bytes:
    """The head of the answer to a HEAD request (no body follows)."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    return data


def requests_total(server: ServerProcess) -> dict[str, float]:
    """x15g_requests_total by its labels, and the duration histogram's count, from /-/metrics."""
    status, _, body = fetch(server, "/-/metrics")
    assert status == 200
    found = re.findall(r'^x15g_(requests_total\{[^}]*\}|request_duration_seconds_count) (\S+)$', body.decode(), re.M)
    return {name: float(value) for name, value in found}


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_metrics_count_the_same_requests_whoever_answered(tmp_path, isolate: bool) -> None:
    """Without an access log the handler's reports carry a tally, not records: /-/metrics counts
    every request once (by method and code, and in the histogram) as in-process, while the
    connection is still held and after it is gone."""
    server = start(tmp_path, "--isolate-hold", "30", "--keepalive-timeout", "60", isolate=isolate, access_log=False)
    heads = 150
    head_200 = 'requests_total{method="HEAD",code="200"}'
    try:
        before = requests_total(server).get(head_200, 0)  # the start's own readiness probe
        with server.connect(timeout=20) as sock:
            for n in range(heads):
                sock.sendall(f"HEAD /whoami?m{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                assert read_head(sock).startswith(b"HTTP/1.1 200 ")
            for path in ("/hello.txt", "/whoami?g"):  # a static file (the worker's), then the app's again
                sock.sendall(get(path))
                read_answer(sock)
            if isolate:
                assert held(server) == 1
            # the scrapes are GETs on other connections: HEAD is all ours
            counted = wait_for(lambda: (lambda m: m.get(head_200) == before + heads and m)(requests_total(server)),
                               timeout=10, what="every HEAD counted")
            sock.sendall("HEAD /whoami?last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            assert read_until_close(sock)[0].startswith(b"HTTP/1.1 200 ")
        assert counted['requests_total{method="GET",code="200"}'] >= 2
        assert counted["request_duration_seconds_count"] >= heads + 2
        wait_for(lambda: requests_total(server).get(head_200) == before + heads + 1,
                 timeout=10, what="the last HEAD counted once the connection went back")
    finally:
        server.stop()


def test_the_access_log_names_the_client_behind_a_trusted_proxy_on_a_held_connection(server) -> None:
    """Loopback is a trusted proxy by default: the handler resolves X-Forwarded-For as the worker
    does, and the worker writes the client it names (a later request without one: the peer)."""
    with server.connect(timeout=20) as sock:
        sock.sendall(get("/whoami?fw0"))
        assert read_answer(sock)[0] == 200
        wait_for(lambda: held(server) == 1)
        sock.sendall(b"GET /whoami?fw1 HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.9\r\n"
                     b"User-Agent: agent \"quoted\"\r\nReferer: http://ref/\r\n\r\n")
        assert read_answer(sock)[0] == 200
        sock.sendall(get("/whoami?fw2", close=True))
        assert read_answer(sock)[0] == 200

    def ours() -> list[str]:
        return [line for line in written_lines(server.access_log) if "?fw" in line]

    lines = wait_for(lambda: len(ours()) == 3 and ours())
    assert lines[1].startswith('198.51.100.9 - - [')
    assert re.search(r'\] "GET /whoami\?fw1 HTTP/1\.1" 200 \d+ "http://ref/" "agent \\x22quoted\\x22"$', lines[1]), lines[1]
    assert lines[0].startswith("127.0.0.1 - - [") and lines[2].startswith("127.0.0.1 - - [")
