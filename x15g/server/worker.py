"""One worker process: its own hub, a bounded pool of connection greenlets, accept loops, drain.

Backpressure, not collapse: when `max_connections` greenlets are busy the accept loop waits for a
free slot, so new clients queue in the kernel's backlog instead of overloading the worker
(gevent's baseserver idea). Accept errors such as EMFILE back off with one log line, not a flood.
On SIGTERM/SIGINT the worker stops accepting, gives idle keep-alive connections `drain_idle_grace`
to send one more request (answered with `Connection: close`) and then closes those still idle,
lets in-flight requests finish up to `graceful_timeout`, and exits 0.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import socket
import time
from typing import Any, Callable, Protocol, cast

import _socket  # the C socket type (no gevent wrapper); see Acceptor
import gevent
from gevent.event import Event

from x15g.app.build import build_app
from x15g.cache.refresh import Refresher, keep_fresh
from x15g.config import Settings
from x15g.diskio import DiskIO
from x15g.http.dates import DateCache
from x15g.http.forwarded import TrustedProxies
from x15g.http.parser import Limits
from x15g.observability.accesslog import AccessLog
from x15g.observability.counters import Counters
from x15g.observability.logs import reopen_logs
from x15g.observability.metrics import RequestMetrics
from x15g.server.answers import ReadyAnswers
from x15g.server.connection import Connection
from x15g.server.runners import Runners
from x15g.server.watchdog import Watchdog

log = logging.getLogger("x15g.worker")

_RealSocket = _socket.socket  # the C socket type: no gevent wrapper, no Python-level __init__
_BACKOFF_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# How often the sweeper looks for connections past their deadline: the timeouts' resolution.
SWEEP_INTERVAL = 0.25


class ServingContext:
    """What every connection of this worker shares (read on the hot path: plain attributes)."""

    def __init__(self, settings: Settings, app: object, access_log: AccessLog | None) -> None:
        self.app = app
        self.limits = Limits.from_settings(settings)
        self.dates = DateCache()
        self.counters = Counters()
        self.access_log = access_log
        # Repeated requests answered from ready bytes (server/answers.py).
        closes_always = settings.keepalive_timeout <= 0 or settings.max_keepalive_requests <= 1
        self.answers = (ReadyAnswers(settings.ready_answers, settings.cache_memory // 2, closes_always)
                        if settings.ready_answers else None)
        self.connections: set[Connection] = set()
        # Peers whose forwarding headers are believed (http/forwarded.py); None: nobody's.
        self.proxies = TrustedProxies(settings.forwarded_allow_ips) if settings.forwarded_allow_ips else None
        self.wait = gevent.get_hub().wait  # the accept loops wait on their listener through this
        self.loop = gevent.get_hub().loop  # ... which they create from this loop
        self.hub_switch = gevent.get_hub().switch
        self.draining = False
        # While draining: until when an idle keep-alive connection may still send a request.
        self.idle_until = float("inf")
        # Duration histogram, requests by method; also counts requests into `counters` (connection._account).
        self.metrics = RequestMetrics(self.counters)
        # The greenlets connections run in while they work (idle ones hold none: connection.py).
        self.runners = Runners(settings.max_connections)
        # Connections whose answer the hub made this loop turn, sent together (connection.py).
        self.hub_answers: list[Connection] = []
        self.periodic: list[Callable[[], None]] = []  # run once a second by housekeeping (metrics publishing)
        # Caches kept fresh off the request path (FileCache.refresh): each runs every `tick`
        # seconds in the worker's refresher greenlet, where it may block.
        self.refreshers: list[Refresher] = []
        # Run once the worker drained, before it exits (the isolated handler pools: their
        # processes stopped and reaped, none outlives the worker).
        self.closers: list[Callable[[], None]] = []
        self.worker_id = 0
        self.header_timeout = settings.header_timeout
        self.keepalive_timeout = settings.keepalive_timeout
        self.body_timeout = settings.body_timeout
        self.send_timeout = settings.send_timeout
        # keepalive_timeout 0 disables keep-alive: every answer closes.
        self.max_requests = settings.max_keepalive_requests if settings.keepalive_timeout > 0 else 1


class RealListeningSocket(Protocol):
    """The C socket (`_socket.socket`) under a listener: its `_accept` returns (fd, address)."""

    def _accept(self) -> tuple[int, Any]: ...


class GeventListener(Protocol):
    """A listening socket as gevent's `socket` module makes it (a worker runs monkey-patched, so
    every `socket.socket` is one): the C socket inside and the read watcher gevent keeps for it."""

    _sock: RealListeningSocket
    _read_event: Any  # the hub's io watcher (libev or libuv), what `ServingContext.wait` takes

    def close(self) -> None: ...


class Acceptor:
    """accept(2) on the real socket under one listener, giving real non-blocking client sockets.

    gevent's `accept` builds a wrapper socket per connection; its construction and close cost a
    third of a `Connection: close` request, and connections wait on watchers of their own.
    TCP_NODELAY is set once on the listener: Linux copies it to every accepted socket.
    """

    __slots__ = ("listener", "_accept", "_family")

    def __init__(self, listener: socket.socket) -> None:
        self.listener = cast(GeventListener, listener)
        self._accept = self.listener._sock._accept
        self._family = int(listener.family)  # the property builds an enum on every read
        if self._family != socket.AF_UNIX:
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def accept(self) -> tuple[Any, object]:
        """The next queued connection and its address; raises BlockingIOError when none is."""
        fd, address = self._accept()
        raw = _RealSocket(self._family, socket.SOCK_STREAM, 0, fd)
        raw.setblocking(False)
        return raw, address


class Worker:
    """Serve `listeners` until told to stop; `serve()` returns the exit status."""

    def __init__(self, settings: Settings, listeners: list[socket.socket], worker_id: int = 0,
                 on_ready: Callable[[], None] | None = None, watch_parent: bool = False) -> None:
        self.settings = settings
        self.listeners = listeners
        self.worker_id = worker_id
        self.on_ready = on_ready
        self.disk = DiskIO(settings.threadpool_size)
        access_log = AccessLog(settings.access_log, settings.access_log_format) if settings.access_log else None
        self.ctx = ServingContext(settings, None, access_log)
        self.ctx.worker_id = worker_id
        self.ctx.app = build_app(settings, self.disk, self.ctx)  # the admin endpoints read ctx
        self.acceptors: list[Acceptor] = []  # one per listener, made when serving starts
        self.stop_event = Event()
        self.graceful = True
        self.parent = os.getppid() if watch_parent else 0
        self._last_accept_error = 0.0
        # --max-requests: recycle after this many requests (jittered per worker); 0 never.
        self.request_limit = settings.max_requests + random.randint(0, settings.max_requests_jitter) if settings.max_requests else 0
        self.watchdog = (Watchdog(settings.timeout, worker_id, access_log.flush if access_log is not None else None)
                         if settings.timeout > 0 else None)

    def serve(self) -> int:
        self.acceptors = [Acceptor(listener) for listener in self.listeners]
        accept_loops = [gevent.spawn(self._accept_loop, acceptor) for acceptor in self.acceptors]
        gevent.signal_handler(signal.SIGTERM, self.stop, True)
        gevent.signal_handler(signal.SIGINT, self.stop, True)
        gevent.signal_handler(signal.SIGQUIT, self.stop, False)
        gevent.signal_handler(signal.SIGUSR1, self._reopen_logs)
        housekeeping = gevent.spawn(self._housekeeping)
        refreshers = [gevent.spawn(keep_fresh, r) for r in self.ctx.refreshers if r.tick > 0]
        sweeper = gevent.get_hub().loop.timer(SWEEP_INTERVAL, SWEEP_INTERVAL, ref=False)
        sweeper.start(self._sweep)
        if self.watchdog is not None:
            self.watchdog.start(gevent.get_hub().loop)
        log.info("worker %d (pid %d) serving", self.worker_id, os.getpid())
        if self.on_ready is not None:
            self.on_ready()
        self.stop_event.wait()
        self._drain(accept_loops)
        if self.watchdog is not None:
            self.watchdog.stop()
        sweeper.stop()
        housekeeping.kill()
        gevent.killall(refreshers)
        self._flush_access_log()  # before the closers: lines are never lost to a slow close
        for close in self.ctx.closers:
            try:
                close()
            except Exception:
                log.exception("closing at the worker's stop failed")
        log.info("worker %d (pid %d) stopped", self.worker_id, os.getpid())
        return 0

    def stop(self, graceful: bool = True) -> None:
        self.graceful = graceful
        self.stop_event.set()

    def _accept_loop(self, acceptor: Acceptor) -> None:
        max_accept = self.settings.max_accept
        pool = self.ctx.runners
        ctx = self.ctx
        wait = ctx.wait
        ready = acceptor.listener._read_event  # gevent's watcher on the listening socket
        accepted = 0
        while not ctx.draining:
            pool.wait_available()
            try:
                raw, address = acceptor.accept()
            except BlockingIOError:
                wait(ready)
                continue
            except OSError as exc:
                if ctx.draining or exc.errno == errno.EBADF:
                    return
                self._accept_failed(exc)
                continue
            connection = Connection(raw, address, ctx)
            if not connection.answer_first():
                pool.start(connection)
            accepted += 1
            if accepted >= max_accept:
                # Let the connections just accepted run before taking more, so several workers
                # sharing one inherited socket take turns.
                accepted = 0
                gevent.sleep(0)

    def _accept_failed(self, exc: OSError) -> None:
        self.ctx.counters.accept_errors += 1
        if exc.errno in _BACKOFF_ERRNOS:
            now = time.monotonic()
            if now - self._last_accept_error > 10:
                log.error("accept failed: %s; backing off (further errors hidden for 10 s)", exc)
                self._last_accept_error = now
            gevent.sleep(0.1)
        elif exc.errno not in (errno.ECONNABORTED, errno.EAGAIN, errno.EPROTO, errno.EINTR):
            log.warning("accept failed: %s", exc)
            gevent.sleep(0.01)

    def _drain(self, accept_loops: list[gevent.Greenlet]) -> None:
        ctx = self.ctx
        ctx.draining = True
        gevent.killall(accept_loops)
        for acceptor in self.acceptors:
            self._accept_pending(acceptor)
            acceptor.listener.close()
        if not self.graceful:
            self.ctx.runners.kill(timeout=1)
            return
        # Closing an idle keep-alive connection races the client's next request on it (RFC 9112
        # §9.3.1), which fails where the client cannot safely retry (a POST). So during a short
        # grace their next request is still answered, with Connection: close, and only the
        # connections that stayed idle are closed. 0 closes them at once.
        started = time.monotonic()
        grace = min(self.settings.drain_idle_grace, self.settings.graceful_timeout)
        ctx.idle_until = started + grace
        if grace > 0:
            self.ctx.runners.join(timeout=grace)
        self._close_idle()
        self.ctx.runners.join(timeout=max(0.0, self.settings.graceful_timeout - (time.monotonic() - started)))
        if len(self.ctx.runners):
            log.warning("graceful timeout: closing %d busy connections", len(self.ctx.runners))
            self.ctx.runners.kill(timeout=1)

    def _accept_pending(self, acceptor: Acceptor) -> None:
        """Serve the connections already queued on the listener before closing it: their clients
        sent a request before the stop, and closing a listener resets its queue (a lost request).
        On a stop the master has made the socket refuse new SYNs first (supervisor._stop), so the
        queue only shrinks; no yield between the last accept and the close in any case. Every one
        is served even beyond --max-connections: the backlog bounds them, and closing one would
        drop a request its client already wrote."""
        ctx = self.ctx
        while True:
            try:
                raw, address = acceptor.accept()
            except OSError:  # BlockingIOError: queue empty; anything else: nothing to drain
                return
            self.ctx.runners.start(Connection(raw, address, ctx))

    def _close_idle(self) -> None:
        """Close keep-alive connections waiting between requests, unless a request just arrived.

        The peek and the shutdown happen together, without yielding, so a request that reached
        the socket before the drain is answered (the connection wakes, serves it with
        `Connection: close`), and the window for one racing the close is as small as it can be.
        """
        peek = socket.MSG_PEEK | socket.MSG_DONTWAIT
        for connection in list(self.ctx.connections):
            if not connection.idle:
                continue
            raw = connection.raw
            try:
                if raw.recv(1, peek):
                    continue
            except OSError:  # BlockingIOError: nothing there; anything else: close anyway
                pass
            try:
                raw.shutdown(socket.SHUT_RDWR)  # its greenlet wakes on EOF and closes
            except OSError:
                pass

    def _sweep(self) -> None:
        """Hub timer callback: expire the connections past their deadline (ConnectionTimeout
        thrown into a waiting one, a parked one closed).

        Runs in the hub like gevent's own Timeout, so the throw happens while the connection is
        still in the wait that set the deadline (no race with it waking up)."""
        now = time.monotonic()
        for connection in [c for c in self.ctx.connections if c.deadline < now]:
            connection.expire()

    def _housekeeping(self) -> None:
        """Once a second: flush the access log off the hub; notice the master's death and the
        request limit (--max-requests: drain, exit 0, the master starts a fresh worker)."""
        while True:
            gevent.sleep(1.0)
            self._flush_access_log()
            for task in self.ctx.periodic:
                task()
            if self.parent and os.getppid() != self.parent:
                log.error("master process is gone; worker %d stopping", self.worker_id)
                self.stop(True)
            elif self.request_limit and self.ctx.counters.requests >= self.request_limit and not self.stop_event.is_set():
                log.info("worker %d (pid %d) served %d requests (--max-requests %d); recycling",
                         self.worker_id, os.getpid(), self.ctx.counters.requests, self.request_limit)
                self.stop(True)

    def _flush_access_log(self) -> None:
        access_log = self.ctx.access_log
        if access_log is not None and access_log.pending:
            self.disk.run(access_log.write_out, access_log.take())

    def _reopen_logs(self) -> None:
        reopen_logs()
        if self.ctx.access_log is not None:
            self._flush_access_log()
            self.disk.run(self.ctx.access_log.reopen)
