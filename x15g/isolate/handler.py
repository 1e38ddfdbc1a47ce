"""The handler process: `python -m x15g.isolate.handler FD`, started fresh by a worker's pool.

FD is its end of the control socket. It reads the setup, opens what it is granted, enters the
sandbox (sandbox.py) and only then imports the application (the WSGI app, or builds the
SPECweb99-like module), says it is ready, and serves hand-overs: each arrives with the client's
socket, is answered by its own greenlet directly on that socket (several at once), through the
same send pipeline as the worker's (server/connection.py: file bodies by sendfile, streamed
bodies, the Connection header).

Then the handler keeps the connection while the requests that follow are its own: it parses the
next head (the bytes the worker had read after the request, else what arrives within
--isolate-hold) with the same strict parser, routes it with the worker's router rebuilt from its
route table (routes.py), and answers it too. Between requests a held connection is *parked* as
the worker parks its idle ones: no greenlet, only its read watcher, whose callback (in the hub)
answers the next request right there when the app answers at once (respond_now: a WSGI call
that returns without waiting, a cached file), the answers of one loop turn sent back to back;
anything else goes on in a greenlet. A request that is not its own (a static file, the admin
endpoints, one with a body), a head that is incomplete or bad, a connection quiet past
--isolate-hold or the worker's drain end the hold: the socket is closed here and the report
goes back with the bytes read and not used (`leftover`) and the further requests answered
since the last progress report, which the worker accounts; it owns the connection again.
While it holds the connection, a progress report (protocol.HELD) carries the tally of its
further requests (and their access-log records, if the worker has a log) to the worker whenever
they fill a batch or are due (protocol.BATCH_*), so a busy connection is accounted as it goes
and never has to go back for that. Only one side reads
the socket at a time. Each request the handler begins is noted on its board (protocol.Board),
so the worker's --isolate-timeout applies to it.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # application code may block on sockets or sleep: it must yield instead

import errno  # noqa: E402
import marshal  # noqa: E402
from collections import deque  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, TypeVar  # noqa: E402

import _socket  # noqa: E402
import gevent  # noqa: E402
from gevent import getcurrent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.socket import wait_write  # noqa: E402

# One greenlet per hand-over: without the spawn-tree bookkeeping (a stack walk) a spawn costs
# 1.6 us instead of 3.1 us.
gevent.config.track_greenlet_tree = False

from x15g.app.errorpage import error_response  # noqa: E402
from x15g.app.responder import Responder  # noqa: E402
from x15g.cache.refresh import keep_fresh  # noqa: E402
from x15g.config import Settings  # noqa: E402
from x15g.errors import HTTPError  # noqa: E402
from x15g.http.dates import DateCache  # noqa: E402
from x15g.http.forwarded import TrustedProxies  # noqa: E402
from x15g.http.messages import Answered, FileRange, Request, Response, StreamedBody  # noqa: E402
from x15g.http.parser import Limits, parse_head  # noqa: E402
from x15g.isolate import protocol, sandbox  # noqa: E402
from x15g.isolate.routes import Routes  # noqa: E402
from x15g.observability.counters import Counters  # noqa: E402
from x15g.observability.logs import setup_logging  # noqa: E402
from x15g.observability.metrics import Tally  # noqa: E402
from x15g.server.connection import INF, RECV_SIZE, Connection, ConnectionTimeout, Outgoing, PeerGone  # noqa: E402

log = logging.getLogger("x15g.isolate.handler")

_monotonic = time.monotonic
SWEEP_INTERVAL = 0.05  # resolution of --send-timeout and of --isolate-hold
_RealSocket = _socket.socket
_Answer = TypeVar("_Answer", Response, "Response | None")
OUTBOX_LIMIT = 64  # reports queued for the worker before a connection waits for room
EXIT_SANDBOX = 3  # the sandbox could not be set up as required (the worker logs why)


class HandlerContext:
    """What the send pipeline (server/connection.py) reads from its context, for a handler: the
    answers go out exactly as the worker would send them, but are accounted by the worker (from
    the report), so counters and access log here are inert. `connections` are the ones sending,
    for the sweeper that enforces --send-timeout."""

    def __init__(self, settings: Settings) -> None:
        hub = gevent.get_hub()
        self.loop = hub.loop
        self.hub_switch = hub.switch
        self.dates = DateCache()
        self.counters = Counters()
        self.metrics = None
        self.access_log = None
        self.answers = None
        self.draining = False
        # as the worker's ServingContext: keepalive_timeout 0 disables keep-alive
        self.max_requests = settings.max_keepalive_requests if settings.keepalive_timeout > 0 else 1
        self.send_timeout = settings.send_timeout
        self.limits = Limits.from_settings(settings)
        self.proxies = TrustedProxies(settings.forwarded_allow_ips) if settings.forwarded_allow_ips else None
        self.hold = min(settings.isolate_hold, settings.keepalive_timeout)
        # a hold as long as the keep-alive timeout ends the connection itself when it runs out
        self.hold_closes = settings.isolate_hold >= settings.keepalive_timeout
        self.connections: set[Connection] = set()  # every connection held, for the sweeper
        self.log_records = settings.access_log is not None  # the worker writes a line per request


class Handler:
    """Answers the hand-overs arriving on `control` with `app`."""

    def __init__(self, control: socket.socket, app: Responder, settings: Settings,
                 routes: Routes | None = None, board: protocol.Board | None = None) -> None:
        self.control = control
        # the same socket, without gevent's wrapper: a send that would block raises instead of waiting
        self.control_raw = _RealSocket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, os.dup(control.fileno()))
        self.app = app
        self.ctx = HandlerContext(settings)
        self.routes = routes  # None: every connection goes back after its answer
        self.board = board
        # Reports the control socket did not take yet, in order: the worker reads a few
        # datagrams at a time (net.unix.max_dgram_qlen), and no connection may wait for that.
        self.outbox: deque[tuple[bytes, protocol.Report]] = deque()
        self.outbox_ready = Event()  # set while the outbox has reports
        self.outbox_room = Event()  # set while it has room (OUTBOX_LIMIT)
        self.outbox_room.set()
        self.respond_now = getattr(app, "respond_now", None)
        self.parked: dict[Connection, Held] = {}  # held connections waiting for their next request
        self.hub_answers: list[tuple[Held, Request, float, Outgoing]] = []  # for _send_held

    def serve(self) -> None:
        sweeper = self.ctx.loop.timer(SWEEP_INTERVAL, SWEEP_INTERVAL, ref=False)
        sweeper.start(self._sweep)
        protocol.send(self.control, protocol.encode_report(protocol.Report(0, 0, 0, False, False)))
        gevent.spawn(self._send_reports)
        for refresher in getattr(self.app, "refreshers", ()):  # the app's caches, as a worker keeps its own
            gevent.spawn(keep_fresh, refresher)
        receiver = protocol.Receiver()
        while True:
            try:
                data, fds = receiver.receive(self.control)
            except (OSError, ValueError) as exc:
                log.error("control socket: %s; handler stopping", exc)
                return
            if not data:
                return  # the worker is gone: so are its connections
            if not fds:
                if data == protocol.DRAIN:
                    self._drain()
                else:
                    log.error("hand-over without a client socket; ignored")
                continue
            gevent.spawn(self.answer, data, fds)

    def _drain(self) -> None:
        """The worker stops: answers from now on close, and the held connections waiting for a
        request go back at the next sweep (the worker closes them as it closes its own)."""
        self.ctx.draining = True
        for connection, held in self.parked.items():
            if not held.answering:
                connection.deadline = 0.0

    def answer(self, data: bytes, fds: list[int]) -> None:
        # The C socket type (no gevent wrapper to change its flags), told its family instead of
        # asking the kernel (three system calls).
        raw = _RealSocket(socket.AF_INET, socket.SOCK_STREAM, 0, fds[0])
        report = protocol.Report(0, 500, 0, False, False)
        ctx = self.ctx
        connection = Connection(raw, None, ctx)
        connection.greenlet = getcurrent()
        ctx.connections.add(connection)
        try:
            hand = protocol.decode_request(data, fds[1] if len(fds) > 1 else -1)
            report.request_id = hand.request_id
            connection._peer = hand.request.peer
            status, sent, keep, wrote, request_id = self._answer(connection, hand.request, hand.keep_allowed)
            report.status, report.sent, report.keep, report.begun = status, sent, keep, wrote > 0
            report.app_request_id = request_id
            if keep:
                if self.routes is None:
                    report.leftover = hand.buffered
                else:
                    self.routes.handed(hand.request)
                    if self._hold(Held(connection, hand, report, wrote), hand.buffered):
                        return  # parked: its read watcher carries on (_on_held)
        except Exception:  # a bug costs this connection, never the handler
            log.exception("hand-over %d failed", report.request_id)
            report.keep = False
        self._finish(connection, report, True)

    def _finish(self, connection: Connection, report: protocol.Report, wait: bool) -> None:
        """The hold is over: close our copy of the socket, then report (the worker is then the
        socket's only owner). `wait` False in the hub."""
        self.ctx.connections.discard(connection)
        self.parked.pop(connection, None)
        for event in (connection.read_event, connection.write_event):
            if event is not None:
                event.close()
        connection.raw.close()
        self._report(report, wait)

    def _report(self, report: protocol.Report, wait: bool = True) -> None:
        """Send `report` now if nothing waits before it, else queue it for `_send_reports`: a
        connection waits only when OUTBOX_LIMIT reports are queued (the worker is that far
        behind), and never in the hub (`wait` False)."""
        data = protocol.encode_report(report)
        outbox = self.outbox
        if not outbox:
            try:
                self.control_raw.send(data)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                self._unsent(report, exc)
                return
        outbox.append((data, report))
        self.outbox_ready.set()
        if wait and len(outbox) >= OUTBOX_LIMIT:
            self.outbox_room.clear()
            self.outbox_room.wait()

    def _send_reports(self) -> None:
        """The greenlet that sends the queued reports in order, waiting while the socket is full."""
        outbox = self.outbox
        fd = self.control_raw.fileno()
        while True:
            self.outbox_ready.wait()
            while outbox:
                data, report = outbox[0]
                try:
                    self.control_raw.send(data)
                except BlockingIOError:
                    wait_write(fd)
                    continue
                except OSError as exc:
                    self._unsent(report, exc)
                outbox.popleft()
                if len(outbox) < OUTBOX_LIMIT:
                    self.outbox_room.set()
            self.outbox_ready.clear()

    def _unsent(self, report: protocol.Report, exc: OSError) -> None:
        """A report the control socket refused: too large (a bug: send it without its records,
        closing), or the worker is gone (nothing to do)."""
        if exc.errno != errno.EMSGSIZE:
            return
        log.error("hand-over %d: report of %d further requests too large; closing",
                  report.request_id, len(report.further))
        report.further, report.keep = [], False
        try:
            protocol.send(self.control, protocol.encode_report(report))
        except OSError:
            pass

    def _hold(self, held: Held, buf: bytes) -> bool:
        """Answer, in this greenlet, the requests that follow while they are this handler's (the
        module doc), from `buf` on. True when the connection parked to wait for the next one
        (`_on_held` goes on from the hub); False when the hold ended (its report says how)."""
        ctx = self.ctx
        connection = held.connection
        while not ctx.draining:
            if not buf:
                if ctx.hold <= 0:
                    break
                self._park(held)
                return True
            parsed = self._next(held, buf)
            if parsed is None:
                break
            request, consumed = parsed
            started = self._begin(held)
            status, sent, keep, wrote, _ = self._answer(connection, request, held.served < ctx.max_requests)
            self._record(held, request, status, sent, started, wrote, True)
            if not keep:
                held.report.keep = False
                return False
            buf = buf[consumed:]
            if not held.served & 31:
                gevent.sleep(0)  # a client that always pipelines must not starve the others
        held.report.leftover = buf
        return False

    def _park(self, held: Held) -> None:
        """Wait for the next request with no greenlet, on the read watcher (`_on_held`, in the
        hub), as the worker parks its idle connections; the sweeper ends the hold when it is
        quiet past --isolate-hold, and reports the records due meanwhile."""
        connection = held.connection
        now = _monotonic()
        if self.board is not None:
            self.board.note(held.hand.slot, -now, held.wrote)  # waiting, not answering: no --isolate-timeout
        held.quiet = now + self.ctx.hold
        held.answering = False
        connection.deadline = min(held.quiet, held.due) if held.report.tally is not None else held.quiet
        if self.ctx.draining:
            connection.deadline = 0.0  # the drain came while it was answering
        connection.greenlet = None
        self.parked[connection] = held
        event = connection.read_event
        if event is None:
            event = connection.read_event = self.ctx.loop.io(connection.raw.fileno(), 1)
        if not event.active:
            event.start(self._on_held, held)

    def _unpark(self, held: Held) -> None:
        connection = held.connection
        connection.read_event.stop()
        connection.deadline = INF
        del self.parked[connection]

    def _on_held(self, held: Held) -> None:
        """Read watcher callback (in the hub) of a parked connection: its next request is
        answered right here when the app answers at once (respond_now) and the socket takes it
        all, as the worker's hub answers a parked connection; anything else goes on in a
        greenlet (`_carry_on`); a request that is not this handler's ends the hold."""
        if held.answering:
            return  # more bytes before its answer left (pipelining): read once it did
        connection = held.connection
        report = held.report
        try:
            data = connection.raw.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        try:
            if not data:
                report.keep = False  # the client closed
                self._finish(connection, report, False)
                return
            parsed = self._next(held, data)
            if parsed is None:
                report.leftover = data
                self._finish(connection, report, False)
                return
            request, consumed = parsed
            if consumed != len(data) or self.respond_now is None:
                self._unpark(held)  # pipelined requests: the greenlet's loop
                gevent.spawn(self._carry_on, held, data)
                return
            started = self._begin(held)
            response = self._respond_now(request)
            if response is None or type(response.body) not in _SENT_FROM_THE_HUB:
                self._unpark(held)  # the app waits, or streams: the greenlet answers
                gevent.spawn(self._carry_on, held, b"", request, started, response)
                return
            out = self._outgoing(connection, request, response, held.served < self.ctx.max_requests)
            connection.deadline = INF  # answering: neither quiet nor to be drained
            held.answering = True
            answers = self.hub_answers
            answers.append((held, request, started, out))
            if len(answers) == 1:
                self.ctx.loop.run_callback(self._send_held)
        except Exception:  # in the hub a bug must cost this connection only
            log.exception("hand-over %d: answering a held connection failed", report.request_id)
            report.keep = False
            self._finish(connection, report, False)

    def _send_held(self) -> None:
        """Loop callback, once a turn's read events were dispatched: send the answers their
        `_on_held` calls made, back to back (as the worker's _send_answers: on loopback each
        send wakes the client; sent one per event, each wakes a client that fell asleep since
        the last). A connection stays parked when its answer keeps it."""
        answers, self.hub_answers = self.hub_answers, []
        for held, request, started, out in answers:
            connection = held.connection
            report = held.report
            try:
                try:
                    done = connection._deliver(out, False)
                except PeerGone:
                    out.keep, done = False, True
                if not done:
                    self._unpark(held)  # the socket is full: the greenlet sends the rest
                    gevent.spawn(self._carry_on, held, b"", request, started, None, out)
                    continue
                self._record(held, request, out.status, out.sent, started, out.offset + out.body_sent, False)
                if not out.keep:
                    report.keep = False
                    self._finish(connection, report, False)
                    continue
                self._park(held)
            except Exception:  # in the hub a bug must cost this connection only
                log.exception("hand-over %d: answering a held connection failed", report.request_id)
                report.keep = False
                self._finish(connection, report, False)

    def _carry_on(self, held: Held, buf: bytes, request: Request | None = None, started: float = 0.0,
                  response: Response | None = None, out: Outgoing | None = None) -> None:
        """A greenlet going on with a held connection from where the hub left it: the answer to
        `request` (the whole of what was read) to make or to finish sending, then the hold;
        without `request`, the hold from the pipelined requests in `buf`."""
        connection = held.connection
        connection.greenlet = getcurrent()
        report = held.report
        try:
            if request is not None:
                if out is None:
                    if response is None:
                        response = self._respond(request, now_tried=True)
                    out = self._outgoing(connection, request, response, held.served < self.ctx.max_requests)
                sent, keep, wrote = self._sent(connection, out)
                self._record(held, request, out.status, sent, started, wrote, True)
                if not keep:
                    report.keep = False
                    self._finish(connection, report, True)
                    return
            if self._hold(held, buf):
                return
        except Exception:  # a bug costs this connection, never the handler
            log.exception("hand-over %d: answering a held connection failed", report.request_id)
            report.keep = False
        self._finish(connection, report, True)

    def _next(self, held: Held, buf: bytes) -> tuple[Request, int] | None:
        """The request at the start of `buf` if it is whole, has no body and is this handler's."""
        ctx = self.ctx
        try:
            parsed = parse_head(buf, ctx.limits)
        except HTTPError:
            return None  # the worker answers it (400 and a lingering close)
        if parsed is None:
            return None  # incomplete: the worker reads the rest, under the header timeout
        request = parsed[0]
        if request.has_body:
            return None  # the worker reads bodies
        request.peer = held.connection._peer
        if ctx.proxies is not None:
            ctx.proxies.resolve(request)
        routes = self.routes
        if routes is None or not routes.owns(request):
            return None
        return parsed

    def _begin(self, held: Held) -> float:
        """A further request begins: counted, and noted on the board (--isolate-timeout)."""
        held.served += 1
        started = _monotonic()
        if self.board is not None:
            self.board.note(held.hand.slot, started, held.wrote)
        return started

    def _record(self, held: Held, request: Request, status: int, sent: int, started: float, wrote: int,
                wait: bool) -> None:
        """Note a further request answered, for the worker: in the tally, and as a record for the
        access log if there is one; a progress report once a batch is full or due (`wait` False
        in the hub)."""
        ended = _monotonic()
        held.wrote += wrote
        report = held.report
        tally = report.tally
        if tally is None:
            tally = report.tally = Tally()
        tally.observe(request.method, status, ended - started, sent)
        if self.ctx.log_records:
            answered = Answered(request, status, sent, started, ended, request.request_id)
            report.further.append(answered)
            held.size += protocol.record_size(answered)
        held.left -= 1
        if (not held.left or ended > held.due or held.size >= protocol.BATCH_BYTES
                or len(tally.codes) >= protocol.BATCH_CODES):
            self._progress(held, wait)

    def _progress(self, held: Held, wait: bool) -> None:
        """A progress report: the worker accounts the further requests answered so far while
        the connection stays here (protocol.HELD)."""
        report = held.report
        self._report(protocol.Report(report.request_id, report.status, report.sent, True, report.begun,
                                     further=report.further, app_request_id=report.app_request_id, held=True,
                                     tally=report.tally),
                     wait)
        report.further, report.tally = [], None
        held.size, held.left, held.due = 0, protocol.BATCH_REQUESTS, _monotonic() + protocol.BATCH_SECONDS

    def _answer(self, connection: Connection, request: Request, keep_allowed: bool) -> tuple[int, int, bool, int, str]:
        """Answer one request: (status, body bytes sent, keep the connection, bytes that left,
        the X-Request-ID the application gave it)."""
        response = self._respond(request)
        sent, keep, wrote = self._sent(connection, self._outgoing(connection, request, response, keep_allowed))
        return response.status, sent, keep, wrote, request.request_id

    def _respond(self, request: Request, now_tried: bool = False) -> Response:
        """The app's answer, waiting for it (in a greenlet); `now_tried`: respond_now said None."""
        if not now_tried:
            # what the worker's hub answers at once in-process (a cached file): the same path here
            response = self._respond_now(request)
            if response is not None:
                return response
        return self._answered(self.app.respond, request)

    def _respond_now(self, request: Request) -> Response | None:
        """The app's answer if it makes it without waiting (from the hub: a WSGI call that
        returns at once, a cached file), else None."""
        now = self.respond_now
        if now is None or request.has_body:
            return None
        return self._answered(now, request)

    def _answered(self, call: Callable[[Request], _Answer], request: Request) -> _Answer | Response:
        """`call(request)`, an error page for what it raises (a bug: 500, logged)."""
        try:
            return call(request)
        except HTTPError as error:
            return error_response(error, request.method == "HEAD")
        except Exception:
            log.exception("error answering %s %r", request.method, request.target)
            return error_response(HTTPError(500, "internal error", close=True), request.method == "HEAD")

    def _outgoing(self, connection: Connection, request: Request, response: Response,
                  keep_allowed: bool) -> Outgoing:
        """The answer as the pipeline sends it (server/connection.py), with the keep-alive decision."""
        body = response.body
        closes = response.close or (type(body) is StreamedBody and body.length is None and request.version != 11)
        # the drain is looked at once the app answered, as the worker's _keeps does
        keep = keep_allowed and request.keep_alive and not closes and not self.ctx.draining
        out = connection._built(response, request, keep, _monotonic())
        out.method = None  # accounted by the worker, from the report
        return out

    def _sent(self, connection: Connection, out: Outgoing) -> tuple[int, bool, int]:
        """Send (the rest of) `out`, waiting: (body bytes sent, keep the connection, bytes that left)."""
        try:
            connection._deliver(out, True)
        except PeerGone:
            out.keep = False
        return out.sent, out.keep and out.done, out.offset + out.body_sent

    def _sweep(self) -> None:
        """Hub timer: ConnectionTimeout into answers stalled past --send-timeout; a parked
        connection's records reported when due, its hold ended when quiet or drained."""
        now = _monotonic()
        for connection in [c for c in self.ctx.connections if c.deadline < now]:
            connection.deadline = INF
            if connection.greenlet is not None:
                connection.greenlet.throw(ConnectionTimeout)
                continue
            held = self.parked.get(connection)
            if held is None:
                continue
            ctx = self.ctx
            if now < held.quiet and not ctx.draining:
                self._progress(held, False)  # quiet for a while: account what was answered
                connection.deadline = held.quiet
                continue
            if ctx.hold_closes and not ctx.draining:
                held.report.keep = False  # idle for the whole keep-alive timeout
            # else quiet: back to the worker, which waits out the keep-alive timeout (or drains)
            self._finish(connection, held.report, False)


class Held:
    """A connection a handler keeps after its hand-over (the hold), and the report it will send."""

    __slots__ = ("connection", "hand", "report", "wrote", "served", "left", "size", "due", "quiet", "answering")

    def __init__(self, connection: Connection, hand: protocol.HandOver, report: protocol.Report, wrote: int) -> None:
        self.connection = connection
        self.hand = hand
        self.report = report
        self.wrote = wrote  # bytes that left before the request being answered (for the board)
        self.served = hand.served  # requests answered on the connection
        # requests until the next progress report, and bytes of the records not yet reported;
        # the first batch is shorter by a random part, so that connections that began together
        # do not all report at once (the worker accounts a report in one go, on the same core)
        self.left = random.randint(1, protocol.BATCH_REQUESTS)
        self.size = random.randrange(protocol.BATCH_BYTES)
        self.due = _monotonic() + protocol.BATCH_SECONDS  # when they go to the worker at the latest
        self.quiet = INF  # parked: when the hold ends if no request comes
        self.answering = False  # parked with an answer made in the hub, sent at the end of the turn


# Bodies an answer made in the hub may have: sent without waiting, or finished by a greenlet.
_SENT_FROM_THE_HUB = (bytes, FileRange, list)


def build_app(setup: dict[str, Any], settings: Settings, grants: sandbox.Grants) -> Responder:
    """The application, imported or built inside the sandbox."""
    kind = setup["kind"]
    if kind == "specweb":
        from dataclasses import replace

        from x15g.diskio import DiskIO
        from x15g.specweb.responder import SpecwebResponder

        state = settings.specweb_state or ""  # always set by config.finish
        local = replace(settings, root=grants.path(settings.root), specweb_state=grants.path(state))
        return SpecwebResponder(local, DiskIO(settings.threadpool_size))
    if kind == "wsgi":
        from dataclasses import replace

        from x15g.app.wsgi import WsgiResponder, load_app

        # wsgi.multiprocess: true when more than one process runs the app
        processes = replace(settings, workers=settings.workers * settings.isolate_procs)
        return WsgiResponder(processes, load_app(settings.wsgi or ""), settings.wsgi_prefix)
    raise ValueError(f"unknown application kind {kind!r}")


def _import_through(grants: sandbox.Grants) -> None:
    """Point the import system at the granted descriptors: sys.path, and the search paths of
    packages imported already (their submodules load later, e.g. encodings.idna)."""
    sys.path[:] = [grants.path(p or os.getcwd()) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if type(search) is list:
            search[:] = [grants.path(p) for p in search]
    sys.path_importer_cache.clear()


def _sandboxed(plan: sandbox.Plan, control: Any) -> tuple[sandbox.Grants, list[str], list[str]] | None:
    """Enter the sandbox of `plan`, keeping stdio and `control`; None (logged) when it failed."""
    plan.keep = [0, 1, 2, control.fileno()]
    try:
        return sandbox.apply(plan)
    except (sandbox.SandboxUnavailable, OSError, KeyError) as exc:
        log.error("isolated handler %d: sandbox not set up: %s", os.getpid(), exc)
        return None


def main(argv: list[str]) -> int:
    # In the server's process group (its CPU and its killpg include us), but stopping is the
    # worker's business: a handler ends when its control socket closes, after its answers.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
    # Until the sandbox closed every other fd, nothing may create gevent's hub (its epoll fd
    # would be closed under it): the setup is read on the bare, blocking C socket.
    setup_socket = _RealSocket(fileno=int(argv[0]))
    sandboxed = None
    if len(argv) > 1:
        # Started by a launcher (launcher.py: the worker is not root): the plan is the
        # launcher's, and the sandbox comes before anything is read from the worker.
        with open(int(argv[1]), "rb") as pipe:
            given = marshal.loads(pipe.read())
        setup_logging("-", given["log_level"])
        sandboxed = _sandboxed(sandbox.Plan(**given["plan"]), setup_socket)
        if sandboxed is None:
            return EXIT_SANDBOX
        _import_through(sandboxed[0])
    data, fds = protocol.receive(setup_socket)  # a spare process waits here (pool.take_process)
    if not data:
        return 0  # a spare the worker no longer needs
    board = protocol.Board(0, fds[0]) if fds else None  # mapped now: its fd is closed before the sandbox
    setup = protocol.decode_setup(data)
    values = setup["settings"]
    settings = protocol.settings_from(values)
    if sandboxed is None:  # the plan came with the setup (the worker is root)
        setup_logging("-", settings.log_level)
        sandboxed = _sandboxed(sandbox.Plan(**setup["plan"]), setup_socket)
        if sandboxed is None:
            return EXIT_SANDBOX
        _import_through(sandboxed[0])
    grants, enforced, missing = sandboxed
    control = socket.socket(fileno=setup_socket.detach())  # gevent's, from here on
    if setup.get("announce"):
        log.info("isolated handler %d: %s", os.getpid(), ", ".join(enforced))
    for part in missing:
        log.warning("isolated handler %d: NOT enforced: %s", os.getpid(), part)
    app = build_app(setup, settings, grants)
    table = setup.get("routes")
    routes = Routes(table, settings) if table is not None else None
    Handler(control, app, settings, routes, board).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
