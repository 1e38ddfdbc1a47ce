"""One client connection: a small state machine that reads requests and sends every answer
through one pipeline.

This is the only module that writes responses to sockets (architecture.md, principle 2).

States (`Connection.state`):

- NEW: accepted, nothing read. The accept loop tries one `recv` (`answer_first`): a request with a
  ready answer is answered right there, no greenlet involved (`Connection: close` clients are then
  served by accept, recv, send, close), and so is one the app answers immediately (below);
  anything else goes to a runner with the bytes read. A connection whose first bytes have not
  come yet is *parked* like an idle one (below), under the header timeout.
- READING: the connection's greenlet reads a request head (under the header deadline) and body.
- ANSWERING: the app decides and the answer goes out (and may wait on a slow client).
- IDLE: between keep-alive requests, *parked*: the connection holds no greenlet (its runner went
  back to the worker's runners: server/runners.py), only a read watcher, so an idle connection
  costs a few hundred bytes. When the next request comes, the watcher's callback (in the hub)
  answers it there if it can without blocking, and stays IDLE; else it resumes the connection in
  a runner with the bytes (and its parse) (READING).

Answering without blocking, in the hub or the accept loop (the Flash/X15 idea): first a *ready
answer* (server/answers.py, sent as stored, no routing: one for the exact head bytes answered
before, with no parse; or one for what in the head selects the answer, read from the parser's
known field blocks without building a Request); else an *immediate answer*: the head is parsed and the app's `respond_now` answers
when nothing it needs may wait (a cached file entry inside its window with the body in memory or
its pages known resident, a 304 or 206 from it, a cached 404). Everything that may block (a
miss, a revalidation, cold pages, a request body, WSGI, CGI, the POST log) goes to the greenlet.
- CLOSED.

What moves between the three places that run a connection (the accept loop, the hub callback,
a runner greenlet) is only the state, the bytes read and not yet parsed (`buffer`), and an answer
the socket did not take at once (`outgoing`, finished in a runner).

The pipeline: every answer, ready or built, is an `Outgoing` and leaves through `_deliver`,
which sends it (head and in-memory body in one `send`, file ranges by `sendfile` after a head
sent with MSG_MORE, streamed chunks, or nothing for a take-over that answered by itself) and
accounts it once, when the last body byte left or the send failed: body bytes actually sent,
duration up to the last byte, counters, histogram, access log. Without waiting (in the hub, in
the accept loop) it stops at the first EAGAIN and the greenlet carries on. `_keeps` is the one
place that decides keep-alive or close.

Timeouts (all settings): `keepalive_timeout` while idle between requests, `header_timeout` for a
whole request head (slowloris), `body_timeout` per read of a body, `send_timeout` per blocked write.
A connection only records a deadline when it has to wait; the worker's sweeper (a hub timer)
throws `ConnectionTimeout` into connections whose deadline passed, so no timer object is created
per request.

Speed: gevent's socket wrapper costs more per call than everything else a cached request needs
(a bare server answered 46k req/s through it, 74k on the real socket). So connections get the
real non-blocking socket from the worker's accept loop and, on EAGAIN, wait on libev watchers of
their own by switching to the hub, which is what the wrapper does internally. A ready answer in
the hub skips the greenlet switch, parsing, routing and head building (1 KiB: ~24 us -> ~11 us).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from gevent import getcurrent
from gevent import sleep as _yield

from x15g.app.errorpage import error_response
from x15g.errors import HTTPError
from x15g.http.body import ChunkedBody, ContentLengthBody
from x15g.http.messages import FileRange, Request, Response, StreamedBody, TakeOverOutcome
from x15g.http.parser import KnownHead, known_head, parse_head, request_of
from x15g.http.writer import connection_tail
from x15g.server.answers import MAX_HEAD, ReadyAnswer
from x15g.server.bodyreader import BodyReader
from x15g.server.sendfile import FileShrunk
from x15g.http.wire import assemble

INF = float("inf")
_MSG_MORE = getattr(socket, "MSG_MORE", 0)

log = logging.getLogger("x15g.connection")

RECV_SIZE = 65536
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_monotonic = time.monotonic

# How the request loop left a connection (Connection._serve).
_PARK = "park"  # waiting for the next request: no greenlet needed
_CLOSE = "close"
_LINGER = "linger"  # close after an error answer, draining what the client still sends

# Connection states (see the module doc).
NEW = "new"
READING = "reading"
ANSWERING = "answering"
IDLE = "idle"
CLOSED = "closed"


class PeerGone(Exception):
    """The client closed, reset or timed out: nothing more can be sent."""


class ConnectionTimeout(Exception):
    """Thrown into a waiting connection by the worker's sweeper when its deadline passed."""


def peer_name(address: object) -> str:
    """accept()'s address as "host:port", "[v6]:port" or "unix"."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "unix"


class Outgoing:
    """One answer on its way out, ready or built, and what accounting it needs.

    `data` is the head (with Date and Connection), maybe with a small body joined to it
    (http/wire.py), of which the first `head_len` bytes are head; `more` larger in-memory body
    parts sent after it in the same `sendmsg` (not copied), so the hub can send them too; `body`
    what follows (a FileRange, a list of parts with file ranges, a StreamedBody) or None.
    `offset` (bytes of `data` and `more` that left) and `body_sent` record progress; `done` is
    set once all is sent. Rarely set fields are class defaults (no __slots__): an immediate
    answer writes only the fields it needs."""

    more: tuple[bytes, ...] = ()
    offset = 0
    body_sent = 0  # body bytes sent after `data` and `more`
    linger = False  # an error answer: the close should linger (see Connection._close)
    request: Request | None = None  # for the access log
    log_fields: Any = None  # a ready answer's prepared access-log fields
    ready = False
    release: Any = None  # called once when the answer ends
    hold: Any = None  # a ready answer's file entry, held open if the greenlet must finish
    files = 0  # file ranges sent (bodies_sendfile)
    done = False
    chunked = False  # a StreamedBody sent with chunked transfer coding
    stream: StreamedBody | None = None  # closed when the answer ends, sent or not

    def __init__(self, data: bytes, head_len: int, body: Any, keep: bool, method: str | None, status: int,
                 started: float) -> None:
        self.data = data
        self.head_len = head_len
        self.body = body
        self.keep = keep
        self.method = method  # None: no request to account (an unparsable head)
        self.status = status
        self.started = started

    @property
    def sent(self) -> int:
        """Body bytes that left so far."""
        return max(0, self.offset - self.head_len) + self.body_sent


class Connection:
    """Serve one accepted socket until it closes; `ctx` is the worker's shared `ServingContext`."""

    __slots__ = ("raw", "read_event", "write_event", "address", "_peer", "ctx", "state", "deadline", "greenlet",
                 "served", "buffer", "outgoing", "early", "opened")

    def __init__(self, raw: Any, address: object, ctx: Any) -> None:
        self.raw = raw  # a real non-blocking socket, not gevent's wrapper (see the module docstring)
        self.read_event: Any = None  # libev watchers, made on first use (many answers never wait)
        self.write_event: Any = None
        self.address = address  # as accept() returned it; `peer` formats it when first needed
        self._peer = ""
        self.ctx = ctx
        self.state = NEW
        self.deadline = INF  # when the current wait must end; INF while not waiting
        self.greenlet: Any = None  # the runner serving it; None while parked
        self.served = 0  # requests answered (or being answered) on this connection
        self.buffer = b""  # bytes read and not yet parsed (the next request's start)
        self.outgoing: Outgoing | None = None  # an answer the socket did not take at once
        # (bytes, parse_head's result) of a request the hub parsed but left to the greenlet
        self.early: tuple[bytes, Any] | None = None
        self.opened = False  # counted open and in ctx.connections (from its first run)
        ctx.counters.connections_total += 1

    @property
    def peer(self) -> str:
        """The client as "host:port" ("[v6]:port", "unix"), for logs and applications."""
        if not self._peer:
            self._peer = peer_name(self.address)
        return self._peer

    @property
    def idle(self) -> bool:
        """Waiting between keep-alive requests (what a drain may close)."""
        return self.state is IDLE

    # -- the one keep-alive decision ------------------------------------------------------------

    def _keeps(self, wants: bool, closes: bool, number: int) -> bool:
        """Whether the connection stays open after its `number`th answer: the client `wants` it,
        the answer does not have to close (`closes`), no drain, and the request limit allows."""
        ctx = self.ctx
        return wants and not closes and not ctx.draining and number < ctx.max_requests

    # -- the accept loop's entry ----------------------------------------------------------------

    def answer_first(self) -> bool:
        """Run by the accept loop before the connection gets a runner: if the first request is
        already there and has a ready answer, send it from here. Returns True when the connection
        is finished; else a runner's `run` continues from the state this left."""
        raw = self.raw
        try:
            data = raw.recv(RECV_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._end()
            return True
        try:
            out = self._made(data)
        except Exception:  # a bug must cost this connection only, not the accept loop
            log.exception("answering %s from the accept loop failed", self.peer)
            self._end()
            return True
        if out is None:
            self.buffer = data
            return False
        try:
            done = self._deliver(out, False)
        except PeerGone:
            self._end()
            return True
        if done and not out.keep:
            self._end()
            return True
        if not done:
            self.outgoing = out
        return False

    # -- the runner greenlet's entry ------------------------------------------------------------

    def run(self) -> bool:
        """Serve in a runner until the connection closes (False) or parks (True): it waits for
        its next request with no greenlet, and `_on_readable` (in the hub) answers or resumes it."""
        ctx = self.ctx
        self.greenlet = getcurrent()
        if not self.opened:
            self.opened = True
            ctx.counters.connections_open += 1
            ctx.connections.add(self)
        how = _CLOSE
        parked = False
        try:
            out, self.outgoing = self.outgoing, None
            if out is None or self._finish(out):
                how = self._serve()
                parked = how is _PARK and self._park()
        except (PeerGone, ConnectionTimeout):
            pass
        except Exception:  # a bug must cost one connection, never the worker
            log.exception("connection from %s failed", self.peer)
        finally:
            if not parked:
                self._shut(how is _LINGER)
        return parked

    def _park(self) -> bool:
        """Give the runner back and wait for the next request on the read watcher alone (IDLE,
        or NEW before its first bytes). False when a drain's grace is over: close instead."""
        ctx = self.ctx
        now = _monotonic()
        if self.served:
            # Only a keep-alive connection between requests counts as idle (closed when a
            # drain's grace ends); a new connection's first request is always awaited.
            deadline = min(now + ctx.keepalive_timeout, ctx.idle_until)  # finite only in a drain
            if deadline <= now:
                return False
            self.state = IDLE
        else:
            deadline = now + ctx.header_timeout
            self.state = NEW
        event = self.read_event
        if event is None:
            event = self.read_event = ctx.loop.io(self.raw.fileno(), 1)
        self.deadline = deadline
        self.greenlet = None
        event.start(self._on_readable)
        return True

    def expire(self) -> None:
        """The sweeper's call (in the hub) once `deadline` passed: ConnectionTimeout into the
        wait of a working connection; a parked one is closed (an idle or header timeout)."""
        self.deadline = INF
        greenlet = self.greenlet
        if greenlet is not None:
            if not greenlet.dead:
                greenlet.throw(ConnectionTimeout)
        elif self.state is not CLOSED:
            self.ctx.counters.head_timed_out(self.state is IDLE)
            self.abort()

    def abort(self) -> None:
        """Close a parked connection from the hub (end of file, a closing answer, a timeout, a
        kill) and free its place among the worker's connections."""
        self._shut(False)
        self.ctx.runners.ended(self)

    def _shut(self, linger: bool) -> None:
        ctx = self.ctx
        try:
            self._close(linger)  # still in ctx.connections: the sweeper bounds a lingering close
        finally:
            ctx.connections.discard(self)
            ctx.counters.connections_open -= 1

    def _finish(self, out: Outgoing) -> bool:
        """Send the rest of an answer the hub or the accept loop started; True if it keeps."""
        self.state = ANSWERING
        if not out.done:
            self._deliver(out, True)
        return out.keep

    def _serve(self) -> str:
        """The request loop, while requests are there to read: returns _PARK when the next one
        has not begun, else how to close (_CLOSE, or _LINGER after an error answer)."""
        ctx = self.ctx
        app = ctx.app
        lazily = getattr(app, "reads_body_lazily", None)  # the router's; test apps may lack it
        buf, self.buffer = self.buffer, b""
        while True:
            if not buf:
                return _PARK
            self.state = READING
            try:
                parsed = self._parse(buf)
                if parsed is None:
                    parsed, buf = self._read_head(buf)
                    if parsed is None:
                        return _CLOSE
                request, consumed = parsed
                head = buf[:consumed]
                buf = buf[consumed:]
                started = _monotonic()
                request.peer = self.peer
                if ctx.proxies is not None:
                    ctx.proxies.resolve(request)  # behind a trusted proxy: the real client
                reader = None
                if request.chunked or request.content_length:
                    if lazily is not None and lazily(request):
                        reader = request.body_reader = self._body_reader(request, buf)
                        buf = b""  # the reader has it; what follows the body comes back as its leftover
                    else:
                        buf = self._read_body(request, buf)
            except HTTPError as error:
                ctx.counters.errors_protocol += 1
                log.info("%s: %s", self.peer, error)
                self.state = ANSWERING
                out = self._built(error_response(error), None, False, _monotonic())
                out.linger = True
                self._deliver(out, True)
                return _LINGER
            self.state = ANSWERING
            self.served += 1
            served = self.served
            try:
                response = app.respond(request)
            except HTTPError as error:
                response = error_response(error, request.method == "HEAD")
            except Exception:
                log.exception("error answering %s %r", request.method, request.target)
                response = error_response(HTTPError(500, "internal error", close=True), request.method == "HEAD")
            kind = type(response.body)
            if kind is not bytes and kind is not FileRange and kind is not list and kind is not StreamedBody:
                keep, buf = self._take_over(request, response, buf, started)
                if not keep:
                    return _CLOSE
                continue
            # A body the app left unread must be dropped before the next request: too much closes.
            closes = reader is not None and not reader.unread_within()
            if reader is not None:
                reader.answered = True  # no 100 Continue after the answer's head
            out = self._answer(request, head, response, started, closes)
            self._deliver(out, True)
            if reader is not None:
                # What the app left unread is dropped (bounded) so the next request can be read;
                # a body that cannot be finished closes, lingering so the answer is not reset.
                if not out.keep:
                    return _LINGER if response.close or not reader.done else _CLOSE
                if not reader.discard():
                    return _LINGER
                buf = reader.leftover
            if not out.keep:
                return _LINGER if response.close else _CLOSE
            if not served & 31:
                # A client whose next request is always already there never makes us wait; let
                # the other connections (and the accept loop) run now and then.
                _yield()

    # -- answers: built, ready, immediate, taken over -------------------------------------------

    def _answer(self, request: Request, head: bytes, response: Response, started: float,
                closes: bool = False) -> Outgoing:
        """Decide keep-alive for the `served`th answer (`closes`: the connection must close for
        a reason of its own), make its Outgoing, and offer it to the ready-answer store (which
        keeps it if its rule allows)."""
        body = response.body
        closes = closes or response.close or (type(body) is StreamedBody and body.length is None
                                    and request.version != 11)
        keep = self._keeps(request.keep_alive, closes, self.served)
        out = self._built(response, request, keep, started)
        answers = self.ctx.answers
        if answers is not None and response.fresh is not None:
            answer = answers.remember(head, request, response, connection_tail(keep, request.version), keep, started)
            access_log = self.ctx.access_log
            if answer is not None and access_log is not None:
                answer.log_fields = access_log.fields(request, response.status, answer.sent)
                answer.request = request
        return out

    def _made(self, data: bytes) -> Outgoing | None:
        """The answer to the request `data` when it can be made without blocking, in the hub or
        the accept loop: a ready answer stored for these exact bytes or for what selects it,
        else an immediate answer. None leaves it to the greenlet."""
        ctx = self.ctx
        answers = ctx.answers
        started = _monotonic()
        if answers is not None and len(data) <= MAX_HEAD:  # longer heads are never kept by their bytes
            answer = answers.lookup(data, started)
            if answer is not None:
                out = self._ready(answer, started, answer.request, answer.log_fields)
                if out is not None:
                    return out
        known = known_head(data, ctx.limits)
        if known is not None:  # a field block the parser knows: no Request unless logged
            if answers is not None:
                method, _, path, _, version, fields = known
                out = self._selected((method, path, version, fields[-1]), started, known)
                if out is not None:
                    return out
            return self._immediate(data, (request_of(known), len(data)), started)
        try:
            parsed = parse_head(data, ctx.limits)
        except HTTPError:
            return None  # the greenlet answers it (and lingers on close)
        if parsed is None:
            return None
        request = parsed[0]
        if answers is not None and parsed[1] == len(data):  # a new field block, not pipelined
            out = self._selected((request.method, request.path, request.version, request.selecting), started,
                                 request)
            if out is not None:
                return out
        return self._immediate(data, parsed, started)

    def _selected(self, key: tuple, started: float, source: Request | KnownHead) -> Outgoing | None:
        """The ready answer stored for what selects it, `key` (method, path, version,
        Request.selecting), for the request that `source` holds; its access-log line shows that
        request, not the one stored."""
        if key[3] is None:
            return None  # a request with a body
        ctx = self.ctx
        answer = ctx.answers.lookup(key, started)
        if answer is None:
            return None
        logged = None
        if ctx.access_log is not None:
            logged = self._logged(source if isinstance(source, Request) else request_of(source))
        return self._ready(answer, started, logged, None)

    def _logged(self, request: Request) -> Request:
        """`request` with its client, for the access-log line of a ready answer selected for it
        (only the access log reads a ready answer's request)."""
        ctx = self.ctx
        request.peer = self._peer or self.peer
        if ctx.proxies is not None:
            ctx.proxies.resolve(request)
        return request

    def _immediate(self, data: bytes, parsed: tuple[Request, int], started: float) -> Outgoing | None:
        """The answer to the request `data` (`parsed`) when the app can make it without blocking
        (a cached file, a 304 or 206 from it, ...): routed and answered right here. None leaves
        it to the greenlet (the parse is kept in `early`)."""
        ctx = self.ctx
        request, consumed = parsed
        if consumed != len(data) or request.chunked or request.content_length:
            self.early = (data, parsed)
            return None  # pipelined requests and bodies: the greenlet's loop
        request.peer = self._peer or self.peer
        if ctx.proxies is not None:
            ctx.proxies.resolve(request)  # behind a trusted proxy: the real client, as in _serve
        try:
            response = ctx.app.respond_now(request)
        except HTTPError as error:
            if error.close:
                self.early = (data, parsed)
                return None
            response = error_response(error, request.method == "HEAD")
        kind = type(response.body) if response is not None else None
        if response is None or response.close or (kind is not bytes and kind is not FileRange and kind is not list):
            if response is not None and response.release is not None:
                response.release()  # the greenlet asks again
            self.early = (data, parsed)
            return None
        self.served += 1
        self.state = ANSWERING
        ctx.counters.immediate_answers += 1
        return self._answer(request, data, response, started)

    def _parse(self, buf: bytes) -> Any:
        """parse_head(buf), or the parse the hub already made of these very bytes."""
        early = self.early
        if early is not None:
            self.early = None
            if early[0] is buf:
                return early[1]
        return parse_head(buf, self.ctx.limits)

    def _built(self, response: Response, request: Request | None, keep: bool, started: float) -> Outgoing:
        """The Outgoing for a response the app built (or an error page, `request` None)."""
        method = request.method if request is not None else "GET"
        version = request.version if request is not None else 11
        body = response.body
        kind = type(body)
        chunked = kind is StreamedBody and body.length is None and version == 11  # type: ignore[union-attr]
        data, head_len, more, rest = assemble(response, self.ctx.dates.header(), connection_tail(keep, version),
                                              response.sends_body(method), chunked)
        out = Outgoing(data, head_len, rest, keep, request.method if request is not None else None,
                       response.status, started)
        if more:
            out.more = more
        if kind is StreamedBody:
            out.stream = body  # type: ignore[assignment]
            out.chunked = chunked
        out.request = request
        if response.release is not None:
            out.release = response.release
        return out

    def _ready(self, answer: ReadyAnswer, started: float, request: Request | None, log_fields: Any) -> Outgoing | None:
        """The Outgoing of a stored ready answer, accounted with `request` and `log_fields` for
        the access log; None when the connection does not decide as it was stored (keep or close)."""
        number = self.served + 1
        keep = self._keeps(answer.wants_keep, False, number)
        if keep is not answer.keep:
            return None  # a drain or the request limit closes where the stored answer kept
        self.served = number
        self.state = ANSWERING
        wire, head_len, more, body = answer.wire_for(self.ctx.dates.header())
        out = Outgoing(wire, head_len, body, keep, answer.method, answer.response.status, started)
        if more:
            out.more = more
        out.ready = True
        out.request = request
        out.log_fields = log_fields
        if answer.file is not None:
            out.hold = answer.response.fresh
        return out

    def _take_over(self, request: Request, response: Response, buf: bytes, started: float) -> tuple[bool, bytes]:
        """Hand the socket to a TakeOver body for this request; account its outcome like any
        answer. Returns (keep, the leftover bytes to parse next)."""
        handler = response.body
        keep = self._keeps(request.keep_alive, response.close, self.served)
        out = Outgoing(b"", 0, None, keep, request.method, 500, started)
        out.request = request
        out.release = response.release
        try:
            # getattr, not isinstance on the runtime-checkable Protocol: that costs ~4.6 us per call
            take_over = getattr(handler, "take_over", None)
            if take_over is None:
                raise TypeError(f"response body of type {type(handler).__name__} cannot be sent")
            outcome = take_over(self.raw.fileno(), buf, keep, self.served, lambda part: self._taken(out, part))
            if not isinstance(outcome, TakeOverOutcome):
                raise TypeError(f"take_over returned {type(outcome).__name__}, not a TakeOverOutcome")
        except (OSError, ConnectionTimeout):
            out.keep = False
            if not out.done:
                self._account(out)
            raise PeerGone() from None
        except Exception:
            log.exception("take-over of %s %r failed; closing the connection", request.method, request.target)
            out.keep = False
            if not out.done:
                self._account(out)
            return False, b""
        out.keep = keep and outcome.keep_alive
        self._taken(out, outcome)
        return out.keep, outcome.leftover

    def _taken(self, out: Outgoing, outcome: TakeOverOutcome) -> None:
        """Account what a take-over reported: its own request (`out`) once, then the requests it
        answered after it. One that keeps the connection may report as it goes (`progress`)."""
        if not out.done:
            out.status = outcome.status
            out.body_sent = outcome.sent
            out.done = True
            request = out.request
            if request is not None:
                request.request_id = outcome.request_id or request.request_id
            self._account(out)
        tally = outcome.tally  # the requests the take-over answered after this one
        if tally is not None:
            self.ctx.metrics.add(tally)
            self.served += tally.requests
        for answered in outcome.answered:  # their access-log lines
            request = answered.request
            request.request_id = answered.request_id
            self._log(answered.status, answered.started, answered.ended, answered.sent, request, None)

    # -- the one send pipeline ------------------------------------------------------------------

    def _deliver(self, out: Outgoing, wait: bool) -> bool:
        """Send what is left of `out`; account it once it is all sent or the send failed.

        With `wait` False (the hub, the accept loop) it stops at the first EAGAIN and returns
        False: the greenlet finishes it later with `wait` True. Raises PeerGone when the client
        (or the file) is gone; the answer is then accounted with the bytes that did leave."""
        try:
            if out.body is None and not out.more and not out.offset:  # the usual answer: one buffer, one send
                data = out.data
                try:
                    out.offset = self.raw.send(data)
                except BlockingIOError:
                    pass
                done = out.offset == len(data) or (wait and self._transmit(out, wait))
            else:
                done = self._transmit(out, wait)
            if not done:
                hold = out.hold
                if hold is not None and out.release is None:
                    hold.acquire()  # the greenlet sends the rest from this fd: keep it open until then
                    out.release = hold.release
                return False
        except FileShrunk as exc:
            log.warning("%s: %s; closing the connection", self.peer, exc)
            self._ended(out)
            raise PeerGone() from None
        except (OSError, ConnectionTimeout) as exc:  # the client stopped reading or went away
            self.ctx.counters.timeouts_send += isinstance(exc, ConnectionTimeout)
            self._ended(out)
            raise PeerGone() from None
        except BaseException:
            self._ended(out)
            raise
        out.done = True
        if out.stream is None and out.release is None:
            self._account(out)  # the usual answer: nothing to close or release
        else:
            self._ended(out)
        return True

    def _ended(self, out: Outgoing) -> None:
        if out.stream is None and out.release is None:
            self._account(out)
            return
        try:
            stream = out.stream
            if stream is not None:
                out.stream = None
                _close_stream(stream)
            if out.release is not None:
                release, out.release = out.release, None
                release()
        finally:
            self._account(out)

    def _account(self, out: Outgoing) -> None:
        """Count and log one answer, once, when it ended (the only place that does, but for the
        requests a take-over tallied itself): its body counters, the metrics, and the access log
        with the fields prepared for it, if any."""
        ctx = self.ctx
        counters = ctx.counters
        if out.ready:
            counters.ready_answers += 1
        if out.offset > out.head_len:
            counters.bodies_memory += 1
        if out.files:
            counters.bodies_sendfile += out.files
        method = out.method
        if method is None:
            return
        sent = out.offset - out.head_len
        if sent < 0:
            sent = 0
        sent += out.body_sent
        now = _monotonic()
        ctx.metrics.observe(method, out.status, now - out.started, sent)
        if ctx.access_log is not None:
            self._log(out.status, out.started, now, sent, out.request, out.log_fields if out.done else None)

    def _log(self, status: int, started: float, ended: float, sent: int, request: Request | None,
             fields: Any) -> None:
        """The access-log line of one answered request (if there is an access log), with
        `fields` prepared for it, if any; `started` and `ended` are monotonic."""
        access_log = self.ctx.access_log
        if access_log is None:
            return
        if fields is None:
            fields = access_log.fields(request, status, sent)
        # behind a trusted proxy the client is the request's (never a ready answer's: see answers.remember)
        peer = request.peer if request is not None and request.forwarded else self.peer
        access_log.log_fields(fields, peer, time.time() - (_monotonic() - ended), ended - started)

    def _transmit(self, out: Outgoing, wait: bool) -> bool:
        """Send the rest of `out` in order: its bytes, then its body parts; True when all left."""
        raw = self.raw
        data = out.data
        more = out.more
        body = out.body
        size = len(data)
        for part in more:
            size += len(part)
        if out.offset < size:
            # Head and file data share segments; a stream's head goes at once (its producer may be slow).
            flags = _MSG_MORE if body is not None and type(body) is not StreamedBody else 0
            while True:
                offset = out.offset
                try:
                    if not more:
                        out.offset += raw.send(memoryview(data)[offset:] if offset else data, flags)
                    elif not offset:
                        out.offset += raw.sendmsg((data, *more), (), flags)
                    else:
                        out.offset += raw.sendmsg(_unsent((data, *more), offset), (), flags)
                except BlockingIOError:
                    pass
                if out.offset >= size:
                    break
                if not wait:
                    return False
                self._wait_writable()
        if body is None:
            return True
        kind = type(body)
        if kind is FileRange:
            if not self._send_range(out, body, wait):
                return False
        elif not wait:
            return False
        elif kind is list:
            self._send_parts(out, body)
        elif kind is StreamedBody:
            self._send_stream(out, body)
        out.body = None
        return True

    def _send_range(self, out: Outgoing, part: FileRange, wait: bool) -> bool:
        """sendfile `part`; without `wait`, what is left stays in `out.body` at the first EAGAIN."""
        fileno = self.raw.fileno()
        fd, offset, remaining = part.fd, part.offset, part.count
        while remaining > 0:
            try:
                n = os.sendfile(fileno, fd, offset, remaining)
            except BlockingIOError:
                if not wait:
                    out.body = FileRange(fd, offset, remaining)
                    return False
                self._wait_writable()
                continue
            if n == 0:
                raise FileShrunk(f"file ended {remaining} bytes before the announced length")
            offset += n
            remaining -= n
            out.body_sent += n
        out.files += 1
        return True

    def _send_parts(self, out: Outgoing, parts: list[Any]) -> None:
        """A list of bytes and FileRanges (multipart/byteranges), in order."""
        pending = b""
        for part in parts:
            if type(part) is FileRange:
                if pending:
                    self._send_bytes(pending, _MSG_MORE)  # text and file data share segments
                    out.body_sent += len(pending)
                    pending = b""
                self._send_range(out, part, True)
            else:
                pending += part
        if pending:
            self._send_bytes(pending)
            out.body_sent += len(pending)

    def _send_stream(self, out: Outgoing, stream: StreamedBody) -> None:
        """Each chunk as the producer makes it: exactly `length` bytes when the head announced it,
        else chunked (HTTP/1.1) or up to the close (HTTP/1.0, `keep` already False)."""
        length = stream.length
        chunked = out.chunked
        try:
            for chunk in stream.chunks:
                if not chunk:
                    continue
                if length is not None:
                    room = length - out.body_sent
                    if len(chunk) > room:
                        log.warning("%s: streamed body longer than its Content-Length %d; cut and closing",
                                    self.peer, length)
                        out.keep = False
                        if room:
                            self._send_bytes(chunk[:room])
                            out.body_sent += room
                        return
                    self._send_bytes(chunk)
                elif chunked:
                    self._send_bytes(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self._send_bytes(chunk)
                out.body_sent += len(chunk)
        except (OSError, ConnectionTimeout, PeerGone):
            raise
        except Exception:
            log.exception("%s: streamed body failed after %d bytes; closing", self.peer, out.body_sent)
            out.keep = False
            return
        if length is not None and out.body_sent < length:
            log.warning("%s: streamed body ended %d bytes before its Content-Length; closing",
                        self.peer, length - out.body_sent)
            out.keep = False
        elif chunked:
            self._send_bytes(_LAST_CHUNK)

    # -- reading --------------------------------------------------------------------------------

    def _wait(self, event: Any, deadline: float) -> None:
        """Block until `event` (a read or write watcher) fires; the sweeper enforces `deadline`."""
        self.deadline = deadline
        event.start(self.greenlet.switch)  # the hub switches back here when the socket is ready
        try:
            self.ctx.hub_switch()
        finally:
            event.stop()
            self.deadline = INF

    def _wait_readable(self, deadline: float) -> None:
        event = self.read_event
        if event is None:
            event = self.read_event = self.ctx.loop.io(self.raw.fileno(), 1)
        self._wait(event, deadline)

    def _recv(self, deadline: float) -> bytes:
        """The next bytes from the client (b"" at EOF); raises ConnectionTimeout or OSError."""
        recv = self.raw.recv
        while True:
            try:
                return recv(RECV_SIZE)
            except BlockingIOError:
                self._wait_readable(deadline)

    def _on_readable(self) -> None:
        """Read watcher callback, run in the hub while parked: make the answer there (a ready or
        immediate answer), sent with the others of this loop turn (`_send_answers`); else resume
        the connection in a runner with the bytes read, or close it (end of file)."""
        try:
            data = self.raw.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.abort()
            return
        try:
            out = self._made(data)
        except Exception:  # in the hub a bug must cost this connection only
            log.exception("answering %s from the hub failed", self.peer)
            self.abort()
            return
        if out is not None:
            self.outgoing = out
            self.deadline = INF
            ctx = self.ctx
            answers = ctx.hub_answers
            answers.append(self)
            if len(answers) == 1:
                ctx.loop.run_callback(_send_answers, ctx)
            return
        self.buffer = data
        self.state = READING
        self._resume()

    def _resume(self) -> None:
        self.read_event.stop()
        self.deadline = INF
        self.ctx.runners.resume(self)

    def _send_made(self) -> None:
        """Send the answer `_on_readable` made (from the hub); stay parked when it keeps."""
        out, self.outgoing = self.outgoing, None
        if out is None:
            return  # closed meanwhile (a kill): `_close` took and accounted it
        try:
            if not self._deliver(out, False):
                self.outgoing = out  # the runner sends the rest
                self._resume()
            elif out.keep:
                self.state = IDLE
                ctx = self.ctx
                deadline = out.started + ctx.keepalive_timeout
                self.deadline = deadline if deadline < ctx.idle_until else ctx.idle_until
            else:
                self.abort()
        except PeerGone:
            self.abort()
        except Exception:  # in the hub a bug must cost this connection only
            log.exception("answering %s from the hub failed", self.peer)
            self.abort()

    def _read_head(self, buf: bytes) -> tuple[Any, bytes]:
        """recv until the head begun in `buf` parses, under the header timeout; (None, b"")
        when the client went away."""
        ctx = self.ctx
        deadline = _monotonic() + ctx.header_timeout
        while True:
            try:
                data = self._recv(deadline)
            except ConnectionTimeout:
                ctx.counters.head_timed_out(False)
                raise HTTPError(408, "request head not received in time", close=True) from None
            except OSError:
                return None, b""
            if not data:
                return None, b""
            buf += data
            parsed = self._parse(buf)
            if parsed is not None:
                return parsed, buf

    def _decoder(self, request: Request) -> Any:
        """The body decoder for `request`; 413 at once for a Content-Length over the limit."""
        limits = self.ctx.limits
        if request.chunked:
            return ChunkedBody(limits)
        if request.content_length > limits.max_body_size:
            raise HTTPError(413, "request body too large", close=True)
        return ContentLengthBody(request.content_length or 0)

    def _body_reader(self, request: Request, buf: bytes) -> BodyReader:
        """A reader the responder pulls the body through (server/bodyreader.py)."""
        return BodyReader(self._decoder(request), buf, self._recv_body, self._send_interim,
                          request.expect_continue)

    def _recv_body(self) -> bytes:
        """The next bytes of a request body under the body timeout; HTTPError when it cannot come."""
        try:
            return self._recv(_monotonic() + self.ctx.body_timeout)
        except ConnectionTimeout:
            self.ctx.counters.timeouts_body += 1
            raise HTTPError(408, "request body not received in time", close=True) from None
        except OSError:
            raise HTTPError(400, "client went away during the request body", close=True) from None

    def _send_interim(self, data: bytes) -> None:
        try:
            self._send_bytes(data)
        except (OSError, ConnectionTimeout):
            raise HTTPError(400, "client went away during the request body", close=True) from None

    def _read_body(self, request: Request, buf: bytes) -> bytes:
        """Read the whole body into `request.body`; returns the leftover (next request's) bytes."""
        ctx = self.ctx
        decoder = self._decoder(request)
        used = decoder.feed(buf)
        buf = buf[used:]
        if not decoder.done and request.expect_continue:
            try:
                self._send_bytes(_CONTINUE)
            except (OSError, ConnectionTimeout):
                raise PeerGone() from None
        while not decoder.done:
            try:
                data = self._recv(_monotonic() + ctx.body_timeout)
            except ConnectionTimeout:
                ctx.counters.timeouts_body += 1
                raise HTTPError(408, "request body not received in time", close=True) from None
            except OSError:
                raise PeerGone() from None
            if not data:
                raise PeerGone()
            used = decoder.feed(data)
            buf = data[used:]
        request.body = decoder.take()
        return buf

    # -- writing helpers ------------------------------------------------------------------------

    def _send_bytes(self, data: bytes, flags: int = 0) -> None:
        """Send all of `data`; waits (with the send timeout per stall) when the socket is full."""
        send = self.raw.send
        try:
            sent = send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)
        while sent < len(data):
            self._wait_writable()
            try:
                sent += send(view[sent:], flags)
            except BlockingIOError:
                pass

    def _wait_writable(self) -> None:
        event = self.write_event
        if event is None:
            event = self.write_event = self.ctx.loop.io(self.raw.fileno(), 2)
        self._wait(event, _monotonic() + self.ctx.send_timeout)

    # -- closing --------------------------------------------------------------------------------

    def _end(self) -> None:
        """Close a connection that never got a runner (answered or gone in the accept loop)."""
        self.state = CLOSED
        self.raw.close()

    def _close(self, linger: bool) -> None:
        """Close; after an error answer, half-close and drain briefly so the client reads it
        instead of getting a reset (RFC 9112 §9.6, nginx's lingering close)."""
        raw = self.raw
        self.state = CLOSED
        try:
            if linger:
                raw.shutdown(socket.SHUT_WR)
                deadline = _monotonic() + 1.0
                while self._recv(deadline):
                    pass
        except (OSError, ConnectionTimeout):
            pass
        finally:
            for event in (self.read_event, self.write_event):
                if event is not None:
                    event.close()
            raw.close()
            out, self.outgoing = self.outgoing, None
            if out is not None and not out.done:
                self._ended(out)  # killed before it could finish: still released and accounted


def _send_answers(ctx: Any) -> None:
    """Loop callback, run once the hub has dispatched a turn's read events: send the answers
    their callbacks made, back to back. On loopback, sending an answer wakes the client in the
    sender's time (24% of a worker's CPU under wrk with heads that never repeat, per perf:
    sock_def_readable); sent one per event, each wakes a client that fell asleep since the last."""
    answers, ctx.hub_answers = ctx.hub_answers, []
    for connection in answers:
        connection._send_made()


def _unsent(buffers: tuple[bytes, ...], offset: int) -> list[Any]:
    """The parts of `buffers` after their first `offset` bytes, for one sendmsg."""
    for i, buffer in enumerate(buffers):
        if offset < len(buffer):
            return [memoryview(buffer)[offset:] if offset else buffer, *buffers[i + 1:]]
        offset -= len(buffer)
    return []


def _close_stream(stream: StreamedBody) -> None:
    close = getattr(stream.chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("closing a streamed body failed")
