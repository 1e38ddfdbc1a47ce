"""A worker's handler processes: start them, hand requests over, notice deaths, respawn.

Each handler has one control socket; several requests can be out at once on it, told apart by
id. `hand_over` sends the client socket and waits (cooperatively) for the report. What can go
wrong costs only the requests the handler holds:
- it dies (crash, kill -9, out of memory): each of its requests is answered 502 by the worker if
  nothing of the answer reached the socket yet, else its connection is closed;
- it does not report within `--isolate-timeout`: it is killed (it still holds the socket and
  might write later), then 504 or a close as above.
Whether the answer had begun is read from the kernel (TCP_INFO's bytes sent, before and after),
so the handler is never trusted with it. Dead handlers are respawned at once, and with a growing
delay (up to 10 s) when they keep dying young.

A handler may keep the connection for the requests that follow while they are its own
(handler.py), sending progress reports with the requests it answered (accounted at once by
`progress`, in the hub); the request it is answering then is the one on its board
(protocol.Board): the timeout runs from that request's start (at most protocol.BATCH_SECONDS
after the hand-over or the last progress report), and "had begun" compares the kernel's count
with the bytes it says it sent before that request.
"""

from __future__ import annotations

import _socket
import ctypes
import itertools
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import gevent
from gevent.event import Event
from gevent.hub import Waiter
from gevent.socket import wait_write

from x15g.app.errorpage import error_response
from x15g.config import Settings
from x15g.errors import HTTPError
from x15g.http.dates import DateCache
from x15g.http.messages import Request
from x15g.http.wire import assemble
from x15g.http.writer import CLOSE
from x15g.isolate import launcher, protocol

log = logging.getLogger("x15g.isolate")

START_TIMEOUT = 30.0  # a handler that is not ready by then is killed and started again
CLOSE_TIMEOUT = 1.0  # at a worker's exit, what its handlers get to exit on their own
SWEEP_INTERVAL = 0.1  # resolution of --isolate-timeout
_YOUNG = 5.0  # a handler dying sooner than this after it started backs the respawns off
_MAX_BACKOFF = 10.0
_TCPI_BYTES_SENT = 200  # offset of tcpi_bytes_sent in struct tcp_info (Linux >= 4.19)
_Q = struct.Struct("<Q")
_REPORTS_PER_WAKE = 64  # reports read in one callback before the hub serves the rest
# The control sockets are read from a hub watcher: the C socket type, no gevent wrapper.
_socketpair = _socket.socketpair


class HandlerGone(Exception):
    """The handler holding the request died or was killed."""


class _Pending:
    __slots__ = ("waiter", "deadline", "request", "slot", "handed", "heard", "progress")

    def __init__(self, waiter: Waiter, handed: float, deadline: float, request: Request, slot: int,
                 progress: Callable[[protocol.Report], None] | None) -> None:
        self.waiter = waiter
        self.handed = handed
        self.heard = handed  # the hand-over or the last progress report
        self.deadline = deadline
        self.request = request
        self.slot = slot  # its board slot
        self.progress = progress  # takes the progress reports (in the hub)


class HandlerProcess:
    """One handler process and its control socket; `spawn` (re)starts it."""

    def __init__(self, pool: "HandlerPool", slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.proc: subprocess.Popen | None = None
        self.sock: Any = None  # the C socket type (read from a hub watcher)
        self.pending: dict[int, _Pending] = {}
        self.ready = False
        self.started = 0.0
        self.backoff = 0.0
        self.gone = Event()  # set once the process exited and its requests were failed
        self.watcher: Any = None
        self.board: protocol.Board | None = None
        self.free_slots: list[int] = []

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def spawn(self) -> None:
        """Give a process (the pool's spare, already past its imports) this slot's work."""
        pool = self.pool
        taken = pool.take_process()
        if pool.closing:  # closed while it started (Popen yields): close() did not see it
            _discard(taken)
            return
        self.proc, parent, self.started = taken
        self.sock = parent
        self.ready = False
        self.gone = Event()
        board = self.board = protocol.Board(pool.settings.max_connections)
        self.free_slots = list(range(board.slots - 1, -1, -1))
        try:
            self.send(pool.setup, [board.fd])
            if pool.drained:
                self.send(protocol.DRAIN)
        finally:
            board.close()  # the mapping stays
        self.watcher = pool.loop.io(parent.fileno(), 1)
        self.watcher.start(self._on_readable)

    def send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        """Send one message, waiting (cooperatively) while the control socket is full."""
        sock = self.sock
        while True:
            try:
                protocol.send(sock, data, fds)
                return
            except BlockingIOError:
                wait_write(sock.fileno(), timeout=self.pool.timeout, timeout_exc=OSError("control socket full"))

    def _on_readable(self) -> None:
        """Watcher callback, run in the hub: dispatch the reports that arrived (waking each
        waiting connection directly, no greenlet of our own in between)."""
        sock = self.sock
        receive = self.pool.receiver.receive
        for _ in range(_REPORTS_PER_WAKE):
            try:
                data, fds = receive(sock)
            except BlockingIOError:
                return
            except (OSError, ValueError):
                data, fds = b"", []
            for fd in fds:  # a handler never has a reason to send descriptors
                os.close(fd)
            if not data:
                break
            try:
                report = protocol.decode_report(data)
            except ValueError as exc:
                log.error("isolated handler %d: %s; killing it", self.pid, exc)
                self.kill()
                break
            if report.request_id == 0:
                if self.ready:
                    log.error("isolated handler %d said it was ready twice; killing it", self.pid)
                    self.kill()
                    break
                self.ready = True
                self.pool.up.set()
                log.info("isolated handler %d ready, %.0f ms after its start", self.pid,
                         (time.monotonic() - self.started) * 1000)
                continue
            if report.held:
                self._progressed(report)
                continue
            pending = self.pending.pop(report.request_id, None)
            if pending is not None:
                pending.waiter.switch(report)
        else:
            return  # more may wait: the watcher calls again (one handler must not hold the hub)
        self.watcher.stop()
        self.ready = False
        if not any(h.ready for h in self.pool.handlers):
            self.pool.up.clear()  # new hand-overs wait for a respawned handler
        gevent.spawn(self._died, sock)

    def _progressed(self, report: protocol.Report) -> None:
        """A progress report on a connection the handler still holds: accounted now."""
        pending = self.pending.get(report.request_id)
        if pending is None:
            return
        pending.heard = time.monotonic()
        if pending.progress is not None:
            try:
                pending.progress(report)
            except Exception:  # in the hub: a bug costs this report's accounting only
                log.exception("accounting a progress report of isolated handler %d failed", self.pid)

    def _died(self, sock: Any) -> None:
        sock.close()
        proc = self.proc
        code = proc.wait() if proc is not None else None
        held, self.pending = self.pending, {}
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with {code}"
        if not self.pool.closing:
            log.error("isolated handler %d %s holding %d request(s)%s", proc.pid if proc else 0, how, len(held),
                      "".join(f"; {p.request.method} {p.request.target.decode('latin-1')!r} from {p.request.peer}"
                              for p in held.values()))
        for pending in held.values():
            _wake(pending.waiter, HandlerGone(how))
        self.gone.set()
        if self.pool.closing:
            return
        lived = time.monotonic() - self.started
        self.backoff = 0.0 if lived > _YOUNG else min(max(self.backoff * 2, 0.05), _MAX_BACKOFF)
        gevent.spawn_later(self.backoff, self._respawn)

    def _respawn(self) -> None:
        if self.pool.closing:
            return
        try:
            self.spawn()
        except OSError as exc:
            log.error("isolated handler could not be started: %s", exc)
            self.backoff = min(max(self.backoff * 2, 0.05), _MAX_BACKOFF)
            gevent.spawn_later(self.backoff, self._respawn)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except OSError:
                pass


class HandlerPool:
    """`procs` handler processes serving one application (`kind`: "wsgi" or "specweb")."""

    def __init__(self, settings: Settings, kind: str) -> None:
        self.settings = settings
        self.kind = kind
        self.timeout = settings.isolate_timeout
        self.setup = b""  # made by start(), once the routes are known
        self.stderr = protocol.handler_stderr(settings)
        self.dates = DateCache()
        self.loop = gevent.get_hub().loop
        self.receiver = protocol.Receiver()  # shared: the reports are read in the hub, one at a time
        self.up = Event()  # set while at least one handler is ready
        self.closing = False
        self._ids = itertools.count(1)
        self.handlers = [HandlerProcess(self, slot) for slot in range(settings.isolate_procs)]
        self._sweeper: Any = None
        self.spare: tuple[subprocess.Popen, Any, float] | None = None  # one process started ahead
        self.draining: Any = lambda: False  # the worker's "stopping?"; its handlers are told once
        self.drained = False

    def start_process(self) -> tuple[subprocess.Popen, Any, float]:
        """A fresh handler process, its control socket and its start time. Until it gets the
        setup it only imports x15g and gevent (the slow part of a start: ~0.3 s) and waits."""
        parent, child = _socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (parent, child):  # a datagram must fit the sender's buffer
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * protocol.MAX_MESSAGE)
        started = time.monotonic()
        proc: Any
        try:
            if launcher.current is not None:  # --user: the launcher starts it as root (launcher.py)
                proc = launcher.current.spawn(self.kind, child.fileno())
            else:
                env = protocol.handler_environment(os.environ, self.settings.isolate_env)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "x15g.isolate.handler", str(child.fileno())],
                    pass_fds=(child.fileno(),), close_fds=True, stdin=subprocess.DEVNULL, stderr=self.stderr, env=env)
        except OSError:
            parent.close()
            raise
        finally:
            child.close()
        parent.setblocking(False)
        return proc, parent, started

    def take_process(self) -> tuple[subprocess.Popen, Any, float]:
        """The spare process if there is a live one (a replacement is then ready in the time
        its sandbox and the app's import take), else a new one; a new spare is started."""
        spare, self.spare = self.spare, None
        if spare is not None and spare[0].poll() is not None:
            spare[1].close()
            spare = None
        if not self.closing:
            gevent.spawn(self._refill)
        if spare is not None:
            return spare[0], spare[1], time.monotonic()
        return self.start_process()

    def _refill(self) -> None:
        if self.spare is None and not self.closing:
            spare = self.start_process()
            if self.closing:  # closed while it started (Popen yields): close() did not see it
                _discard(spare)
                return
            self.spare = spare

    def start(self, routes: Any = None, draining: Any = None, wait: float = START_TIMEOUT) -> None:
        """Start every handler; wait until one is ready (the rest come up in the background).
        `routes`: which requests after the first are the handlers' own (protocol.setup_message);
        `draining`: returns True once the worker stops (its handlers then give connections back)."""
        self.setup = protocol.setup_message(self.settings, self.kind, routes)
        if draining is not None:
            self.draining = draining
        for handler in self.handlers:
            handler.spawn()
        self._sweeper = gevent.spawn(self._sweep)
        if not self.up.wait(wait):
            log.error("no isolated handler became ready within %.0f s", wait)

    def close(self) -> None:
        self.closing = True
        spare, self.spare = self.spare, None
        if spare is not None:
            spare[1].close()  # it sees EOF before any setup and exits
        if self._sweeper is not None:
            self._sweeper.kill()
        for handler in self.handlers:
            if handler.watcher is not None:
                handler.watcher.stop()
            if handler.sock is not None:
                handler.sock.close()  # the handler sees EOF and exits
        # Reaped before the worker exits: none is left running (or a zombie) after it. They all
        # saw EOF at once; one deadline for all, then SIGKILL (the master's own grace is short).
        deadline = time.monotonic() + CLOSE_TIMEOUT
        procs = [p for p in [h.proc for h in self.handlers] + [spare[0] if spare is not None else None] if p]
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        for proc in procs:
            proc.wait()

    def _pick(self) -> HandlerProcess | None:
        best = None
        for handler in self.handlers:
            if handler.ready and (best is None or len(handler.pending) < len(best.pending)):
                best = handler
        return best

    def hand_over(self, request: Request, fd: int, keep_allowed: bool, buffered: bytes = b"",
                  served: int = 1, progress: Callable[[protocol.Report], None] | None = None) -> protocol.Report:
        """Have a handler answer `request` on the socket `fd` (and maybe the requests after it,
        starting with `buffered`); returns its report once the connection is back, and gives
        `progress` (in the hub) each progress report that comes before.
        Runs in the connection's greenlet and blocks it (only it) until the report."""
        handler = self._pick()
        if handler is None or not handler.free_slots:  # all are (re)starting: wait for one
            self.up.wait(self.timeout)
            handler = self._pick()
            if handler is None or not handler.free_slots:
                return self._fail(request, fd, 503, "no application handler is running", None)
        before = _bytes_sent(fd)
        request_id = next(self._ids) & 0xFFFFFFFF or next(self._ids)
        board, slot = handler.board, handler.free_slots.pop()
        assert board is not None
        handed = time.monotonic()
        board.note(slot, handed, 0)
        payload, body_fd = protocol.encode_request(request_id, request, keep_allowed, buffered, served, slot)
        waiter = Waiter()
        handler.pending[request_id] = _Pending(waiter, handed, handed + self.timeout, request, slot, progress)
        try:
            try:
                handler.send(payload, [fd] if body_fd < 0 else [fd, body_fd])
            except OSError:
                handler.pending.pop(request_id, None)
                return self._fail(request, fd, 502, "the application's handler is gone", before)
            finally:
                if body_fd >= 0:
                    os.close(body_fd)
            result = waiter.get()
            if type(result) is protocol.Report:
                return result
            started, sent_before = board.read(slot)
            if started < 0:  # it was waiting for a request on the connection: nothing to answer
                return protocol.Report(0, 502, 0, False, True)
            # What the handler sent before the request it failed on (a lie only hurts its own client).
            expected = before + sent_before if before is not None else None
            if isinstance(result, gevent.Timeout):
                return self._fail(request, fd, 504, "the application did not answer in time", expected)
            return self._fail(request, fd, 502, "the application's handler failed", expected)
        finally:
            if handler.board is board:
                handler.free_slots.append(slot)

    def _sweep(self) -> None:
        """Kill the handlers holding a request past its deadline (and wait until they are
        gone) before answering it: a live handler could still write to the socket. Tell them
        once when the worker drains."""
        while True:
            gevent.sleep(SWEEP_INTERVAL)
            if not self.drained and self.draining():
                self.drained = True
                for handler in self.handlers:
                    if handler.ready:
                        try:
                            handler.send(protocol.DRAIN)
                        except OSError:
                            pass  # it is gone: its connections are failed by _died
            now = time.monotonic()
            for handler in self.handlers:
                late = [(rid, p) for rid, p in handler.pending.items() if p.deadline < now]
                if late and handler.board is not None:
                    late = [(rid, p) for rid, p in late if not self._later(handler.board, p, now)]
                if not late:
                    continue
                for rid, p in late:
                    later = handler.board is not None and handler.board.read(p.slot)[0] > p.handed
                    log.error("isolated handler %d: %s%s %r from %s not answered within %.1f s; killing the handler",
                              handler.pid, "a request after " if later else "", p.request.method,
                              p.request.target.decode("latin-1"), p.request.peer, self.timeout)
                    del handler.pending[rid]
                gevent.spawn(self._expire, handler, [p for _, p in late])

    def _later(self, board: protocol.Board, pending: _Pending, now: float) -> bool:
        """Whether the request the handler is answering on this connection began later than the
        hand-over (its board says so), so its own deadline is not yet past; moves the deadline."""
        started = board.read(pending.slot)[0]
        idle = started < 0  # waiting for the next request since -started: at most --isolate-hold
        # no more than a batch after the handler was last heard of (it reports at least that often)
        started = min(abs(started), pending.heard + protocol.BATCH_SECONDS)
        deadline = started + self.timeout + (self.settings.isolate_hold if idle else 0.0)
        if deadline > now:
            pending.deadline = deadline
            return True
        return False

    def _expire(self, handler: HandlerProcess, late: list[_Pending]) -> None:
        gone = handler.gone
        handler.kill()
        gone.wait(5.0)
        for pending in late:
            _wake(pending.waiter, gevent.Timeout(self.timeout))

    def _fail(self, request: Request, fd: int, status: int, reason: str, before: int | None) -> protocol.Report:
        """Answer `status` ourselves if nothing of the answer was sent yet (the kernel's count
        of bytes sent is still `before`), else just close."""
        after = _bytes_sent(fd)
        closed = protocol.Report(0, status, 0, False, True)
        if before is not None and after is not None and after != before:
            return closed  # the answer had begun: only a close is honest
        if before is None and status != 503:
            return closed  # not TCP: cannot tell, so close
        response = error_response(HTTPError(status, reason, close=True), request.method == "HEAD")
        head, _, more, _ = assemble(response, self.dates.header(), CLOSE, response.send_body)
        data = b"".join((head, *more))
        try:
            _send_all(fd, data, self.settings.send_timeout)
        except (OSError, gevent.Timeout):
            return closed
        return protocol.Report(0, status, len(response.body) if response.send_body else 0,  # type: ignore[arg-type]
                               False, True)


_libc = ctypes.CDLL(None, use_errno=True)
_getsockopt = _libc.getsockopt
_TCP_INFO_SIZE = _TCPI_BYTES_SENT + 8


def _bytes_sent(fd: int) -> int | None:
    """The kernel's count of bytes sent on a TCP socket; None for other sockets (one
    getsockopt on the bare fd: the connection gives us no socket object)."""
    buffer = ctypes.create_string_buffer(_TCP_INFO_SIZE)
    size = ctypes.c_uint32(_TCP_INFO_SIZE)
    if _getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_INFO, buffer, ctypes.byref(size)) != 0:
        return None
    if size.value < _TCP_INFO_SIZE:
        return None
    return _Q.unpack_from(buffer.raw, _TCPI_BYTES_SENT)[0]


def _discard(started: tuple[subprocess.Popen, Any, float]) -> None:
    """Stop and reap a handler process that was started too late (its pool closed meanwhile)."""
    proc, sock, _ = started
    sock.close()
    proc.kill()
    proc.wait()


def _wake(waiter: Waiter, value: object) -> None:
    """Hand `value` to a waiting connection; Waiter.switch must run in the hub."""
    gevent.get_hub().loop.run_callback(waiter.switch, value)


def _send_all(fd: int, data: bytes, timeout: float) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            wait_write(fd, timeout=timeout, timeout_exc=gevent.Timeout(timeout))
