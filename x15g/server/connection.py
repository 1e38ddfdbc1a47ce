"""One client connection, served by one greenlet: read heads, let the app decide, write answers.

This is the only module that writes responses to sockets (architecture.md, principle 2). The loop per request:
parse from the leftover buffer (pipelining) or `recv` more under the header deadline, read a body
if the framing announces one, call the app, then send the head with the body in one `send`
(bytes) or the head with MSG_MORE followed by `sendfile` (file ranges).

Timeouts (all settings): `keepalive_timeout` while idle between requests, `header_timeout` for a
whole request head (slowloris), `body_timeout` per read of a body, `send_timeout` per blocked write.
A connection only records a deadline when it has to wait; the worker's sweeper (a hub timer)
throws `ConnectionTimeout` into connections whose deadline passed, so no timer object is created
per request.

Speed: gevent's socket wrapper costs more per call than everything else a cached request needs
(measured: a bare server answered 46k req/s through it, 74k on the real socket), and building and
closing one per connection was a third of a `Connection: close` request. So connections get the
real non-blocking socket from the worker's accept loop and, on EAGAIN, wait on libev watchers of
their own by switching to the hub, which is what the wrapper does internally.

Ready answers (server/answers.py): between keep-alive requests the read watcher's callback runs
in the hub, reads the next request and, when its head bytes equal one answered before from the
open-file cache, sends the stored answer right there (bytes, or a head and a sendfile): no switch
to the connection's greenlet, no parsing, routing or head building. That took a cached 1 KiB
answer from ~24 us to ~11 us. The greenlet (a runner, server/runners.py) gets everything else:
other requests, EOF, the rest of an answer the socket did not take. The accept loop does the same
for a first request that is already there when it accepts (`answer_first`).
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
from x15g.http.messages import FileRange, Request, Response
from x15g.http.parser import parse_head
from x15g.server.sendfile import FileShrunk, send_file

INF = float("inf")
_MSG_MORE = getattr(socket, "MSG_MORE", 0)

log = logging.getLogger("x15g.connection")

RECV_SIZE = 65536
_KEEP_11 = b"\r\n"
_KEEP_10 = b"Connection: keep-alive\r\n\r\n"
_CLOSE = b"Connection: close\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_monotonic = time.monotonic


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


class _Unsent:
    """The part of a ready answer the socket did not take at once, for the greenlet to finish:
    bytes, then a file range; `release` drops the reference that keeps the file open."""

    __slots__ = ("rest", "file", "release")

    def __init__(self, rest: bytes, file: FileRange | None = None, release: Any = None) -> None:
        self.rest = rest
        self.file = file
        self.release = release


class Connection:
    """Serve one accepted socket until it closes; `ctx` is the worker's shared `ServingContext`."""

    __slots__ = ("raw", "read_event", "write_event", "address", "_peer", "ctx", "idle", "deadline", "greenlet",
                 "served", "pending", "unsent", "close_after_unsent")

    def __init__(self, raw: Any, address: object, ctx: Any) -> None:
        self.raw = raw  # a real non-blocking socket, not gevent's wrapper (see the module docstring)
        self.read_event: Any = None  # libev watchers, made on first use (many answers never wait)
        self.write_event: Any = None
        self.address = address  # as accept() returned it; `peer` formats it when first needed
        self._peer = ""
        self.ctx = ctx
        self.idle = False
        self.deadline = INF  # when the current wait must end; INF while not waiting
        self.greenlet: Any = None
        self.served = 0  # requests answered, by this greenlet or by the hub (_on_readable)
        self.pending = b""  # bytes read by answer_first that the request loop must parse
        self.unsent: _Unsent | None = None  # the rest of an answer answer_first could not send at once
        self.close_after_unsent = False

    @property
    def peer(self) -> str:
        """The client as "host:port" ("[v6]:port", "unix"), for logs and applications."""
        if not self._peer:
            self._peer = peer_name(self.address)
        return self._peer

    def answer_first(self) -> bool:
        """Run by the accept loop before the connection gets a runner: if the first request is
        already there and has a ready answer, send it from here, without any greenlet switch
        (a `Connection: close` client is then served by accept, recv, send, close). Returns
        True when the connection is finished; else `run` continues where this stopped."""
        ctx = self.ctx
        raw = self.raw
        try:
            data = raw.recv(RECV_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            ctx.counters.connections_total += 1
            raw.close()
            return True
        started = _monotonic()
        answer = ctx.answers.lookup(data, started)
        if answer is None or not self._may_send_ready(answer):
            self.pending = data
            return False
        try:
            unsent = self._send_ready(answer, started)
        except PeerGone:
            unsent = None
        else:
            if unsent is not None:
                self.unsent = unsent
                self.close_after_unsent = not answer.keep
                return False
            if answer.keep:
                return False
        ctx.counters.connections_total += 1
        raw.close()
        return True

    def _may_send_ready(self, answer: Any) -> bool:
        """Not while draining (every answer must then close), and a keep-alive answer never as the
        connection's last request, whose answer says Connection: close (full path)."""
        ctx = self.ctx
        return not ctx.draining and (not answer.keep or self.served + 1 < ctx.max_requests)

    def _send_ready(self, answer: Any, started: float) -> _Unsent | None:
        """Send a ready answer without ever waiting: what the socket did not take comes back as
        an `_Unsent` for the greenlet. Raises PeerGone when the client or the file is gone."""
        wire = answer.wire_for(self.ctx.dates.header())
        part = answer.file
        raw = self.raw
        try:
            sent = raw.send(wire, _MSG_MORE if part is not None else 0)
        except BlockingIOError:
            sent = 0
        except OSError:
            raise PeerGone() from None
        self._count_ready(answer, started)
        if part is None:
            return None if sent == len(wire) else _Unsent(wire[sent:])
        done = 0
        if sent == len(wire):
            try:
                done = os.sendfile(raw.fileno(), part.fd, part.offset, part.count)
            except BlockingIOError:
                pass
            except OSError:
                raise PeerGone() from None
            else:
                if done == part.count:
                    return None
                if done == 0:
                    log.warning("%s: file ended before the announced length; closing the connection", self.peer)
                    raise PeerGone()
        entry = answer.response.fresh
        entry.acquire()  # the greenlet sends the rest from this fd: keep it open until then
        return _Unsent(wire[sent:], FileRange(part.fd, part.offset + done, part.count - done), entry.release)

    def _count_ready(self, answer: Any, started: float) -> None:
        self.served += 1
        ctx = self.ctx
        counters = ctx.counters
        counters.ready_answers += 1
        if answer.file is not None:
            counters.bodies_sendfile += 1
        elif answer.sent:
            counters.bodies_memory += 1
        duration = _monotonic() - started
        ctx.metrics.observe(answer.method, answer.response.status, duration, answer.sent)
        if ctx.access_log is not None:
            ctx.access_log.log_fields(answer.log_fields, self.peer, time.time(), duration)

    def run(self) -> None:
        ctx = self.ctx
        self.greenlet = getcurrent()
        ctx.counters.connections_open += 1
        ctx.counters.connections_total += 1
        ctx.connections.add(self)
        linger = False
        try:
            unsent, self.unsent = self.unsent, None
            if unsent is not None:
                self._finish_unsent(unsent)
                if self.close_after_unsent:
                    return
            linger = self._serve()
        except (PeerGone, ConnectionTimeout):
            pass
        except Exception:  # a bug must cost one connection, never the worker
            log.exception("connection from %s failed", self.peer)
        finally:
            try:
                self._close(linger)  # still in ctx.connections: the sweeper bounds a lingering close
            finally:
                ctx.connections.discard(self)
                ctx.counters.connections_open -= 1

    def _serve(self) -> bool:
        """The request loop; returns True when the close should linger (an error answer)."""
        ctx = self.ctx
        limits = ctx.limits
        app = ctx.app
        answers = ctx.answers
        buf, self.pending = self.pending, b""
        while True:
            try:
                parsed = parse_head(buf, limits) if buf else None
                if parsed is None:
                    parsed, buf = self._read_head(buf, self.served == 0)
                    if parsed is None:
                        return False
                request, consumed = parsed
                head = buf[:consumed]
                buf = buf[consumed:]
                started = _monotonic()
                request.peer = self.peer
                if request.chunked or request.content_length:
                    buf = self._read_body(request, buf)
            except HTTPError as error:
                ctx.counters.errors_protocol += 1
                log.info("%s: %s", self.peer, error)
                self._send(error_response(error), None, False, _monotonic())
                return True
            self.served += 1
            served = self.served
            try:
                response = app.respond(request)
            except HTTPError as error:
                response = error_response(error, request.method == "HEAD")
            except Exception:
                log.exception("error answering %s %r", request.method, request.target)
                response = error_response(HTTPError(500, "internal error", close=True), request.method == "HEAD")
            keep = (request.keep_alive and not response.close and not ctx.draining
                    and served < ctx.max_requests)
            tail = self._send(response, request, keep, started)
            # Stored when the Connection part follows from the request alone, or from settings
            # that close after every answer (not from a drain or the request limit), and the
            # head is the whole request (no body).
            if response.fresh is not None and answers is not None and (
                    keep or not request.keep_alive or ctx.max_requests == 1) and not (
                    request.chunked or request.content_length):
                answer = answers.remember(head, response, request.method, tail, keep, started)
                if answer is not None and ctx.access_log is not None:
                    answer.log_fields = ctx.access_log.fields(request, response.status, answer.sent)
            if not keep:
                return response.close
            if not served & 31:
                # A client whose next request is always already there never makes us wait; let
                # the other connections (and the accept loop) run now and then.
                _yield()

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

    def _recv(self, deadline: float, wait_first: bool = False) -> bytes:
        """The next bytes from the client (b"" at EOF); raises ConnectionTimeout or OSError.

        `wait_first` waits for readability before the first recv: right after an answer the
        client has rarely sent its next request yet (measured under wrk -c50: 88% of those recv
        calls failed with EAGAIN), and a failed recv costs a syscall plus an exception."""
        recv = self.raw.recv
        if wait_first:
            if self.ctx.answers is not None:
                return self._wait_request(deadline)
            self._wait_readable(deadline)
        while True:
            try:
                return recv(RECV_SIZE)
            except BlockingIOError:
                self._wait_readable(deadline)

    def _wait_request(self, deadline: float) -> bytes:
        """Between keep-alive requests: wait while the hub answers repeated requests by itself
        (`_on_readable`); returns the bytes of the first request it could not answer (b"" at EOF)."""
        event = self.read_event
        if event is None:
            event = self.read_event = self.ctx.loop.io(self.raw.fileno(), 1)
        while True:
            self.deadline = deadline
            event.start(self._on_readable)
            try:
                got = self.ctx.hub_switch()
            finally:
                event.stop()
                self.deadline = INF
            if type(got) is bytes:
                return got
            # The hub answered but the socket took only part of it: finish sending here.
            self._finish_unsent(got)
            deadline = _monotonic() + self.ctx.keepalive_timeout

    def _finish_unsent(self, unsent: _Unsent) -> None:
        try:
            if unsent.rest:
                self._send_bytes(unsent.rest, _MSG_MORE if unsent.file is not None else 0)
            if unsent.file is not None:
                send_file(self.raw.fileno(), unsent.file, self._wait_writable)
        except FileShrunk as exc:
            log.warning("%s: %s; closing the connection", self.peer, exc)
            raise PeerGone() from None
        except (OSError, ConnectionTimeout):
            raise PeerGone() from None
        finally:
            if unsent.release is not None:
                unsent.release()

    def _on_readable(self) -> None:
        """Watcher callback, run in the hub: answer a repeated request from the ready answers
        without switching to this connection's greenlet; hand anything else to the greenlet."""
        try:
            data = self.raw.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            try:
                handover = self._answer_ready(data)
            except Exception:  # in the hub a bug must cost this connection only
                log.exception("ready answer to %s failed", self.peer)
                handover = b""
            if handover is None:
                return
            data = handover
        self.greenlet.switch(data)

    def _answer_ready(self, data: bytes) -> bytes | _Unsent | None:
        """Send the ready answer to `data` if there is one: None when done, else what the
        greenlet must handle (the request itself, the unsent rest of the answer, b"" if gone)."""
        ctx = self.ctx
        started = _monotonic()
        answer = ctx.answers.lookup(data, started)
        if answer is None or not answer.keep or not self._may_send_ready(answer):
            return data  # answers that close the connection take the full path
        try:
            unsent = self._send_ready(answer, started)
        except PeerGone:
            return b""
        if unsent is None:
            self.deadline = started + ctx.keepalive_timeout
        return unsent

    def _read_head(self, buf: bytes, first: bool) -> tuple[Any, bytes]:
        """recv until a whole head parses; (None, b"") when the client went away while idle."""
        ctx = self.ctx
        deadline = INF
        if not buf:
            # Only a keep-alive connection between requests counts as idle (closed when a drain's
            # grace ends); a new connection's first request is always awaited and answered.
            self.idle = not first
            if first:
                wait_until = _monotonic() + ctx.header_timeout
            else:
                now = _monotonic()
                wait_until = min(now + ctx.keepalive_timeout, ctx.idle_until)  # finite only in a drain
                if wait_until <= now:
                    return None, b""
        else:
            deadline = wait_until = _monotonic() + ctx.header_timeout
        while True:
            try:
                data = self._recv(wait_until, not buf and not first)
            except ConnectionTimeout:
                ctx.counters.timeouts += 1
                if not buf:
                    self.idle = False
                    return None, b""
                raise HTTPError(408, "request head not received in time", close=True) from None
            except OSError:
                return None, b""
            if not data:
                return None, b""
            if not buf:
                self.idle = False
                deadline = wait_until = _monotonic() + ctx.header_timeout
            buf += data
            parsed = parse_head(buf, ctx.limits)
            if parsed is not None:
                return parsed, buf
            wait_until = deadline

    def _read_body(self, request: Request, buf: bytes) -> bytes:
        """Read the whole body into `request.body`; returns the leftover (next request's) bytes."""
        ctx = self.ctx
        if request.chunked:
            decoder: Any = ChunkedBody(ctx.limits)
        else:
            if request.content_length > ctx.limits.max_body_size:
                raise HTTPError(413, "request body too large", close=True)
            decoder = ContentLengthBody(request.content_length)
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
                ctx.counters.timeouts += 1
                raise HTTPError(408, "request body not received in time", close=True) from None
            except OSError:
                raise PeerGone() from None
            if not data:
                raise PeerGone()
            used = decoder.feed(data)
            buf = data[used:]
        request.body = decoder.take()
        return buf

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

    def _send(self, response: Response, request: Request | None, keep: bool, started: float) -> bytes:
        """Write head (+ Date, Connection) and body; count and log it. Returns the Connection part."""
        ctx = self.ctx
        if keep:
            tail = _KEEP_11 if request.version == 11 else _KEEP_10
        else:
            tail = _CLOSE
        head = response.head + ctx.dates.header() + tail
        body = response.body
        sent = 0
        try:
            if not response.send_body or (request is not None and request.method == "HEAD"):
                self._send_bytes(head)
            elif type(body) is bytes:
                self._send_bytes(head + body if body else head)
                sent = len(body)
                ctx.counters.bodies_memory += 1
            else:
                sent = self._send_parts(head, body)
        except FileShrunk as exc:
            log.warning("%s: %s; closing the connection", self.peer, exc)
            raise PeerGone() from None
        except (OSError, ConnectionTimeout):  # the client stopped reading or went away
            raise PeerGone() from None
        finally:
            if response.release is not None:
                response.release()
            if request is not None:
                ctx.metrics.observe(request.method, response.status, _monotonic() - started, sent)
                if ctx.access_log is not None:
                    ctx.access_log.log(request, response.status, sent, time.time(), _monotonic() - started)
        return tail

    def _send_parts(self, head: bytes, body: Any) -> int:
        """A FileRange or a list of bytes/FileRange parts (multipart/byteranges)."""
        parts = body if type(body) is list else [body]
        pending = head
        sent = 0
        fileno = self.raw.fileno()
        for part in parts:
            if type(part) is FileRange:
                if pending:
                    self._send_bytes(pending, _MSG_MORE)  # head and file data share segments
                send_file(fileno, part, self._wait_writable)
                pending = b""
                sent += part.count
                self.ctx.counters.bodies_sendfile += 1
            else:
                pending += part
                sent += len(part)
        if pending:
            self._send_bytes(pending)
        return sent

    def _close(self, linger: bool) -> None:
        """Close; after an error answer, half-close and drain briefly so the client reads it
        instead of getting a reset (RFC 9112 §9.6, nginx's lingering close)."""
        raw = self.raw
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
