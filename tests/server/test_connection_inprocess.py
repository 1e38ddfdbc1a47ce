"""A `Connection` driven in process over a real socketpair, state by state: the one send
pipeline (built and ready answers, partial sends, accounting), the keep-alive decision, and the
two body kinds other layers build on (streamed bodies, take-overs).

The server end is the real non-blocking socket a worker's accept loop would hand over; the test
talks on the other end through gevent's socket, so the hub runs the connection while the test
waits. Waits are on conditions (a bounded number of hub turns), never on the clock."""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any, Callable, Iterator

import gevent
import pytest
from gevent import socket as gsocket

from x15g.config import default_settings
from x15g.http.messages import FileRange, Request, Response, StreamedBody, TakeOverOutcome
from x15g.http.writer import build_head
from x15g.observability.accesslog import AccessLog
from x15g.server.connection import ANSWERING, CLOSED, IDLE, NEW, Connection
from x15g.server.worker import ServingContext

GET = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"


class Entry:
    """Stands for a file cache entry (a response's `fresh`): always fresh, counts its holders."""

    def __init__(self) -> None:
        self.fresh_until = float("inf")
        self.resident_until = float("inf")
        self.retired = False
        self.held = 0

    def acquire(self) -> None:
        self.held += 1

    def release(self) -> None:
        self.held -= 1


class App:
    """Answers every request with what `answer(request)` returns; records the requests. With
    `immediate` it says it answers without blocking (the hub then answers); else it may block."""

    def __init__(self, answer: Callable[[Request], Response], immediate: bool = False) -> None:
        self.answer = answer
        self.immediate = immediate
        self.requests: list[Request] = []
        self.immediate_requests: list[Request] = []

    def respond(self, request: Request) -> Response:
        self.requests.append(request)
        return self.answer(request)

    def respond_now(self, request: Request) -> Response | None:
        if not self.immediate:
            return None
        self.immediate_requests.append(request)
        return self.answer(request)


def fixed(body: bytes, entry: Entry | None = None) -> Callable[[Request], Response]:
    response = Response(200, build_head(200, (("Content-Type", "text/plain"),), len(body)), body, len(body),
                        fresh=entry)
    return lambda request: response


class Harness:
    """One connection of a worker-like context, with the client end of its socket."""

    def __init__(self, app: App, ready: bool = True, ctx: ServingContext | None = None, **settings: Any) -> None:
        self.ctx = ctx or ServingContext(default_settings(ready_answers=4096 if ready else 0, **settings), app, None)
        client, server = gsocket.socketpair()
        self.client = client
        raw = server._sock  # the real socket, as Acceptor.accept gives it
        raw.setblocking(False)
        self._keep = server  # the wrapper owns nothing we use, but must outlive the test
        self.connection = Connection(raw, ("127.0.0.1", 40000), self.ctx)
        self.runners = self.ctx.runners
        self.unread = b""  # bytes received past the last response read

    def start(self) -> None:
        """What the accept loop does: try the first request from here, else start a runner."""
        if self.ctx.answers is None or not self.connection.answer_first():
            self.runners.start(self.connection)

    def until(self, condition: Callable[[], bool], turns: int = 10000) -> None:
        """Let the hub run (it polls the sockets on every turn) until `condition` holds."""
        for _ in range(turns):
            if condition():
                return
            gevent.sleep(0.001)  # sleep(0) only runs callbacks; a timer turn also polls for I/O
        raise AssertionError("condition not reached")

    def read_response(self) -> tuple[bytes, bytes]:
        data, self.unread = self.unread, b""
        while b"\r\n\r\n" not in data:
            chunk = self.client.recv(65536)
            assert chunk, f"closed after {data!r}"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        head += b"\r\n"
        match = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
        if re.search(rb"(?i)\r\ntransfer-encoding: chunked", head):
            while not rest.endswith(b"0\r\n\r\n"):
                chunk = self.client.recv(65536)
                assert chunk, "closed inside a chunked body"
                rest += chunk
            return head, dechunk(rest)  # (the tests never pipeline after a chunked answer)
        length = int(match.group(1)) if match else None
        while length is None or len(rest) < length:
            chunk = self.client.recv(65536)
            if not chunk:
                assert length is None, "closed inside a body"
                break
            rest += chunk
        if length is not None:
            rest, self.unread = rest[:length], rest[length:]
        return head, rest

    def read_to_close(self) -> bytes:
        data, self.unread = self.unread, b""
        while True:
            chunk = self.client.recv(65536)
            if not chunk:
                return data
            data += chunk

    def closed_by_server(self) -> bool:
        return self.client.recv(1) == b""

    def close(self) -> None:
        self.client.close()
        self.runners.join(5)


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out += data[:size]
        assert data[size:size + 2] == b"\r\n"
        data = data[size + 2:]


@pytest.fixture
def harness_factory() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(app: App, **kw: Any) -> Harness:
        harness = Harness(app, **kw)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def test_states_of_a_keep_alive_connection(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(App(fixed(b"hello")))
    h.start()
    assert h.connection.state is NEW  # nothing sent yet: parked until the first request
    assert h.ctx.counters.connections_total == 1
    h.client.sendall(GET)
    head, body = h.read_response()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"hello"
    h.until(lambda: h.connection.state is IDLE)
    assert h.connection.idle
    h.client.sendall(GET)
    h.read_response()
    h.client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, body = h.read_response()
    assert b"\r\nConnection: close" in head and body == b"hello"
    assert h.closed_by_server()
    h.until(lambda: h.connection.state is CLOSED)
    counters = h.ctx.counters
    assert (counters.requests, counters.connections_total, counters.connections_open) == (3, 1, 0)
    assert counters.bytes_sent == 15 and counters.bodies_memory == 3


def test_an_idle_connection_holds_no_greenlet(harness_factory: Callable[..., Harness]) -> None:
    """Between requests (and before the first) a connection is parked: its runner went back to
    the worker's runners, only the read watcher waits. A request that may block resumes it in
    a runner; the runner is given back once the answer is out."""
    app = App(fixed(b"hello"))  # not immediate: every request needs a runner
    h = harness_factory(app)
    runners = h.runners
    h.start()
    h.until(lambda: h.connection.opened and runners.running == 0)
    assert h.connection.state is NEW and h.connection.greenlet is None and len(runners) == 1  # open, holding no greenlet
    for n in range(3):
        h.client.sendall(GET)
        assert h.read_response()[1] == b"hello"
        h.until(lambda: h.connection.idle and runners.running == 0)
        assert h.connection.greenlet is None and len(runners) == 1
    assert len(app.requests) == 3 and h.ctx.counters.connections_open == 1
    h.client.close()  # end of file reaches the watcher: closed from the hub, its place freed
    h.until(lambda: h.connection.state is CLOSED)
    assert (len(runners), h.ctx.counters.connections_open, len(h.ctx.connections)) == (0, 0, 0)


def test_a_parked_connection_past_its_deadline_is_closed_by_the_sweeper(
        harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(App(fixed(b"hello")))
    h.start()
    h.client.sendall(GET)
    h.read_response()
    h.until(lambda: h.connection.idle and h.connection.greenlet is None)
    h.connection.expire()  # what the worker's sweeper does once the keep-alive deadline passed
    assert h.closed_by_server()
    assert h.connection.state is CLOSED and len(h.runners) == 0
    assert (h.ctx.counters.idle_closes, h.ctx.counters.timeouts_header) == (1, 0)

    silent = harness_factory(App(fixed(b"hello")))  # never sends: parked as NEW
    silent.start()
    silent.until(lambda: silent.connection.opened and silent.runners.running == 0)
    silent.connection.expire()
    assert silent.closed_by_server() and silent.ctx.counters.timeouts_header == 1


def test_killing_the_runners_closes_parked_connections_too(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(App(fixed(b"hello")))
    h.start()
    h.client.sendall(GET)
    h.read_response()
    h.until(lambda: h.connection.idle and h.runners.running == 0)
    h.runners.kill(timeout=1)
    assert h.closed_by_server() and h.connection.state is CLOSED
    assert len(h.runners) == 0 and h.ctx.counters.connections_open == 0


def test_ready_answers_leave_through_the_same_pipeline(harness_factory: Callable[..., Harness]) -> None:
    entry = Entry()
    h = harness_factory(App(fixed(b"hello", entry)))
    h.start()
    heads = []
    for _ in range(5):
        h.client.sendall(GET)
        head, body = h.read_response()
        assert body == b"hello"
        heads.append(re.sub(rb"\r\nDate: [^\r]*", b"", head))
        h.until(lambda: h.connection.idle)  # answered from the hub or not, it is idle again
    assert len(set(heads)) == 1
    counters = h.ctx.counters
    assert counters.ready_answers == 3  # stored on its second answer
    assert len(h.ctx.app.requests) == 2  # the ready ones never reached the app
    assert (counters.requests, counters.bytes_sent, counters.bodies_memory) == (5, 25, 5)
    assert sum(h.ctx.metrics.buckets) == 5


def test_a_first_request_already_there_is_answered_by_the_accept_loop(harness_factory: Callable[..., Harness]) -> None:
    entry = Entry()
    close = b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    app = App(fixed(b"hello", entry))
    h = harness_factory(app)
    for _ in range(2):  # two connections make the answer ready
        other = Harness(app, ctx=h.ctx)
        other.client.sendall(close)
        other.start()
        assert other.read_response()[1] == b"hello"
        other.close()
    h.client.sendall(close)
    assert h.connection.answer_first() is True  # answered and closed, no runner
    head, body = h.read_response()
    assert body == b"hello" and b"Connection: close" in head
    assert h.connection.state is CLOSED
    assert h.ctx.counters.ready_answers == 1
    assert h.ctx.counters.connections_total == 3  # once per connection, whichever path served it


def big_app(size: int) -> tuple[App, Entry]:
    entry = Entry()
    return App(fixed(b"x" * size, entry)), entry


def test_an_answer_the_socket_does_not_take_is_finished_by_the_greenlet_and_counted_once(
        harness_factory: Callable[..., Harness]) -> None:
    size = 4 << 20  # larger than any socket buffer: the hub cannot send it at once
    app, _ = big_app(size)
    h = harness_factory(app)
    h.start()
    for _ in range(2):
        h.client.sendall(GET)
        assert len(h.read_response()[1]) == size
    h.until(lambda: h.connection.idle)
    h.client.sendall(GET)  # ready now
    h.until(lambda: h.connection.state is ANSWERING)
    assert not h.connection.idle  # an answer on its way is not idle
    requests_before = h.ctx.counters.requests
    assert len(h.read_response()[1]) == size
    h.until(lambda: h.connection.idle)
    counters = h.ctx.counters
    assert counters.ready_answers == 1 and counters.requests == requests_before + 1 == 3
    assert counters.bytes_sent == 3 * size


def test_a_client_gone_mid_answer_is_accounted_with_what_left(harness_factory: Callable[..., Harness]) -> None:
    size = 4 << 20
    app, _ = big_app(size)
    h = harness_factory(app)
    h.start()
    h.client.sendall(GET)
    h.until(lambda: h.connection.state is ANSWERING and h.connection.greenlet is not None)
    h.client.recv(1000)
    h.client.close()
    h.until(lambda: h.connection.state is CLOSED)
    counters = h.ctx.counters
    assert counters.requests == 1
    assert 0 < counters.bytes_sent < size


def test_a_file_body_is_sent_with_sendfile_and_released(harness_factory: Callable[..., Harness],
                                                       tmp_path: Any) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789" * 1000)
    fd = os.open(path, os.O_RDONLY)
    released = []
    app = App(lambda request: Response(200, build_head(200, (), 500), FileRange(fd, 100, 500), 500,
                                       release=lambda: released.append(1)))
    h = harness_factory(app)
    h.start()
    try:
        h.client.sendall(GET)
        assert h.read_response()[1] == (b"0123456789" * 1000)[100:600]
        h.until(lambda: h.connection.idle)
        assert released == [1] and h.ctx.counters.bodies_sendfile == 1 and h.ctx.counters.bytes_sent == 500
    finally:
        os.close(fd)


def test_drain_and_request_limit_close_even_a_ready_answer(harness_factory: Callable[..., Harness]) -> None:
    entry = Entry()
    h = harness_factory(App(fixed(b"hello", entry)), max_keepalive_requests=4)
    h.start()
    for _ in range(3):
        h.client.sendall(GET)
        assert b"Connection" not in h.read_response()[0]
    h.until(lambda: h.connection.idle)
    h.client.sendall(GET)  # the fourth: the limit closes, though the stored answer keeps
    head, body = h.read_response()
    assert b"Connection: close" in head and body == b"hello"
    assert h.closed_by_server()

    h2 = harness_factory(App(fixed(b"hello", entry)))
    h2.start()
    h2.client.sendall(GET)
    h2.read_response()
    h2.until(lambda: h2.connection.idle)
    h2.ctx.draining = True
    h2.client.sendall(GET)
    assert b"Connection: close" in h2.read_response()[0]
    assert h2.closed_by_server()


class Chunks:
    """A producer with `close()`, recording what happened to it."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = 0
        self.produced = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if self.fail_after is not None and self.produced >= self.fail_after:
                raise RuntimeError("producer failed")
            self.produced += 1
            yield chunk

    def close(self) -> None:
        self.closed += 1


def streamed(chunks: Chunks, length: int | None) -> Callable[[Request], Response]:
    return lambda request: Response(200, build_head(200, (("Content-Type", "text/plain"),), length),
                                    StreamedBody(chunks, length), length or 0)


def test_streamed_body_with_content_length(harness_factory: Callable[..., Harness]) -> None:
    chunks = Chunks([b"abc", b"", b"defg"])
    h = harness_factory(App(streamed(chunks, 7)))
    h.start()
    h.client.sendall(GET)
    head, body = h.read_response()
    assert body == b"abcdefg" and b"Transfer-Encoding" not in head
    h.until(lambda: h.connection.idle)  # exact length: the connection stays
    assert chunks.closed == 1 and h.ctx.counters.bytes_sent == 7


def test_streamed_body_chunked_for_http11_and_close_delimited_for_http10(
        harness_factory: Callable[..., Harness]) -> None:
    chunks = Chunks([b"abc", b"defg"])
    h = harness_factory(App(streamed(chunks, None)))
    h.start()
    h.client.sendall(GET)
    head, body = h.read_response()
    assert b"\r\nTransfer-Encoding: chunked" in head and body == b"abcdefg"
    h.until(lambda: h.connection.idle)
    assert chunks.closed == 1 and h.ctx.counters.bytes_sent == 7

    chunks10 = Chunks([b"abc", b"defg"])
    h10 = harness_factory(App(streamed(chunks10, None)))
    h10.start()
    h10.client.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, body = h10.read_response()  # read up to the close
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head and body == b"abcdefg"
    h10.until(lambda: h10.connection.state is CLOSED)
    assert chunks10.closed == 1


def test_streamed_body_longer_or_shorter_than_announced_closes(harness_factory: Callable[..., Harness]) -> None:
    long = Chunks([b"abc", b"defgh"])
    h = harness_factory(App(streamed(long, 5)))
    h.start()
    h.client.sendall(GET)
    assert h.read_response()[1] == b"abcde"  # cut at the announced length
    assert h.closed_by_server()
    assert long.closed == 1

    short = Chunks([b"abc"])
    h2 = harness_factory(App(streamed(short, 5)))
    h2.start()
    h2.client.sendall(GET)
    data = h2.read_to_close()
    assert data.endswith(b"\r\n\r\nabc")  # the client sees the truncation as a close
    assert short.closed == 1 and h2.ctx.counters.bytes_sent == 3


def test_streamed_body_head_request_client_gone_and_failing_producer(harness_factory: Callable[..., Harness]) -> None:
    chunks = Chunks([b"abc"])
    h = harness_factory(App(streamed(chunks, None)))
    h.start()
    h.client.sendall(b"HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += h.client.recv(65536)
    assert data.endswith(b"\r\n\r\n") and b"chunked" in data
    h.until(lambda: h.connection.idle)
    assert chunks.closed == 1 and chunks.produced == 0

    endless = Chunks([b"x" * 65536] * 1000)
    h2 = harness_factory(App(streamed(endless, None)))
    h2.start()
    h2.client.sendall(GET)
    h2.until(lambda: endless.produced >= 2)  # the socket fills: the producer is blocked
    h2.client.close()
    h2.until(lambda: h2.connection.state is CLOSED)
    assert endless.closed == 1 and endless.produced < 1000

    failing = Chunks([b"abc", b"def"], fail_after=1)
    h3 = harness_factory(App(streamed(failing, None)))
    h3.start()
    h3.client.sendall(GET)
    data = h3.read_to_close()
    assert data.endswith(b"3\r\nabc\r\n")  # no last chunk: the client knows the body is incomplete
    assert failing.closed == 1


class Handler:
    """A take-over that answers on the fd itself and reports what it did."""

    def __init__(self, body: bytes, keep: bool = True) -> None:
        self.body = body
        self.keep = keep
        self.seen: list[tuple[bytes, bool]] = []

    def take_over(self, fd: int, buffered: bytes, keep_alive: bool, served: int,
                  progress: Callable[[TakeOverOutcome], None]) -> TakeOverOutcome:
        self.seen.append((buffered, keep_alive))
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.setblocking(True)
            tail = b"" if self.keep and keep_alive else b"Connection: close\r\n"
            sock.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n%s\r\n%s" % (len(self.body), tail, self.body))
        finally:
            sock.close()
        return TakeOverOutcome(201, len(self.body), self.keep and keep_alive, buffered)


def test_take_over_is_accounted_and_the_connection_continues(harness_factory: Callable[..., Harness]) -> None:
    handler = Handler(b"taken")
    app = App(lambda request: Response(0, b"", handler) if request.path == b"/t"
              else fixed(b"hello")(request))
    h = harness_factory(app)
    h.start()
    h.client.sendall(b"GET /t HTTP/1.1\r\nHost: t\r\n\r\n" + GET)  # pipelined: the second is leftover
    head, body = h.read_response()
    assert head.startswith(b"HTTP/1.1 201") and body == b"taken"
    assert h.read_response()[1] == b"hello"
    assert handler.seen == [(GET, True)]
    h.until(lambda: h.connection.idle)
    counters = h.ctx.counters
    assert counters.requests == 2 and counters.bytes_sent == 10
    assert h.ctx.metrics.snapshot()["by_method"]["GET"] == {"200": 1, "201": 1}

    closing = Handler(b"bye", keep=False)
    h2 = harness_factory(App(lambda request: Response(0, b"", closing)))
    h2.start()
    h2.client.sendall(b"GET /t HTTP/1.1\r\nHost: t\r\n\r\n")
    assert h2.read_response()[1] == b"bye"
    assert h2.closed_by_server()
    assert h2.ctx.counters.requests == 1


def test_access_log_and_metrics_agree_whichever_path_answered(harness_factory: Callable[..., Harness],
                                                              tmp_path: Any) -> None:
    h = harness_factory(App(fixed(b"hello", Entry())))
    h.ctx.access_log = AccessLog(str(tmp_path / "access.log"), "json")
    h.start()
    for _ in range(4):
        h.client.sendall(GET)
        h.read_response()
        h.until(lambda: h.connection.idle)
    assert h.ctx.counters.ready_answers == 2
    records = [json.loads(line) for line in h.ctx.access_log.take().splitlines()]
    for record in records:
        del record["time"], record["duration_ms"]
    assert len(records) == 4 and all(record == records[0] for record in records)
    assert records[0]["bytes"] == 5 and records[0]["status"] == 200
    assert h.ctx.metrics.snapshot()["by_method"]["GET"] == {"200": 4}


def test_a_stored_answer_selected_by_meaning_is_logged_as_the_request_that_came(
        harness_factory: Callable[..., Harness], tmp_path: Any) -> None:
    """Heads that differ in their query and user agent share one stored answer once the parser
    knows their field block; each access-log line still shows its own target and user agent,
    and the metrics count every request alike."""
    app = App(fixed(b"hello", Entry()), immediate=True)
    h = harness_factory(app)
    h.ctx.access_log = AccessLog(str(tmp_path / "access.log"), "json")
    h.start()
    for n in range(8):
        agent = b"agent-%d" % (n % 2)
        h.client.sendall(b"GET /a?n=%d HTTP/1.1\r\nHost: t\r\nUser-Agent: %s\r\n\r\n" % (n, agent))
        assert h.read_response()[1] == b"hello"
        h.until(lambda: h.connection.idle)
    counters = h.ctx.counters
    assert counters.ready_answers >= 4 and len(app.immediate_requests) + len(app.requests) + counters.ready_answers == 8
    records = [json.loads(line) for line in h.ctx.access_log.take().splitlines()]
    assert [(r["path"], r["query"], r["user_agent"]) for r in records] == [
        ("/a", "n=%d" % n, "agent-%d" % (n % 2)) for n in range(8)]
    assert all(r["status"] == 200 and r["bytes"] == 5 for r in records)
    assert h.ctx.metrics.snapshot()["by_method"]["GET"] == {"200": 8}

    # Behind a trusted proxy each line shows the client the proxy named for that request.
    proxied = harness_factory(App(fixed(b"hello", Entry()), immediate=True), forwarded_allow_ips=("127.0.0.1",))
    proxied.ctx.access_log = AccessLog(str(tmp_path / "proxied.log"), "combined")
    proxied.start()
    for n in range(8):
        proxied.client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.%d\r\n\r\n" % (n % 2))
        assert proxied.read_response()[1] == b"hello"
        proxied.until(lambda: proxied.connection.idle)
    assert proxied.ctx.counters.ready_answers >= 4
    lines = proxied.ctx.access_log.take().splitlines()
    assert [line.split()[0] for line in lines] == ["192.0.2.%d" % (n % 2) for n in range(8)]


def test_an_answer_that_needs_no_wait_is_made_in_the_hub_whatever_the_head(
        harness_factory: Callable[..., Harness]) -> None:
    app = App(fixed(b"hello"), immediate=True)  # not `fresh`: no ready answer can serve them
    h = harness_factory(app)
    h.start()
    h.client.sendall(GET)
    h.read_response()
    h.until(lambda: h.connection.idle)
    for n in range(5):  # every head new
        h.client.sendall(b"GET /a?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % n)
        assert h.read_response()[1] == b"hello"
        h.until(lambda: h.connection.idle)
    # The first request was not there at accept: the connection parked (no greenlet) and the hub
    # answered it when it came, as it answered the others, arriving while idle: the app's
    # blocking respond never ran.
    assert len(app.immediate_requests) == 6 and len(app.requests) == 0
    counters = h.ctx.counters
    assert (counters.requests, counters.ready_answers, counters.bytes_sent) == (6, 0, 30)
    assert counters.immediate_answers == 6

    # A request that may block goes to the greenlet, which reuses the hub's parse.
    slow = App(fixed(b"slow"))
    h2 = harness_factory(slow)
    h2.start()
    h2.client.sendall(GET)
    assert h2.read_response()[1] == b"slow"
    h2.until(lambda: h2.connection.idle)
    h2.client.sendall(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert h2.read_response()[1] == b"slow"
    assert [r.path for r in slow.requests] == [b"/a", b"/b"]


def test_a_body_of_bytes_parts_is_sent_from_the_hub_in_order(harness_factory: Callable[..., Harness]) -> None:
    """A list of bytes parts (the dynamic module's large answers, not joined) leaves in one
    sendmsg after the head, from the hub; one larger than the socket takes is finished by the
    greenlet from where the hub stopped, inside a part, and counted once."""
    small = [b"<a>", b"b" * 5000, b"</a>"]
    large = [b"[", os.urandom(3 << 20), b"|", os.urandom(2 << 20), b"]"]
    bodies = {b"/small": small, b"/large": large}

    def answer(request: Request) -> Response:
        parts = bodies[request.path]
        length = sum(map(len, parts))
        return Response(200, build_head(200, (), length), list(parts), length)

    app = App(answer, immediate=True)
    h = harness_factory(app)
    h.start()
    for path in (b"/small", b"/large", b"/small"):
        h.client.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
        assert h.read_response()[1] == b"".join(bodies[path])
        h.until(lambda: h.connection.idle)
    assert len(app.immediate_requests) == 3 and not app.requests  # every one made in the hub
    counters = h.ctx.counters
    assert counters.requests == 3 and counters.bytes_sent == 2 * sum(map(len, small)) + sum(map(len, large))
