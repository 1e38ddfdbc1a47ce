"""The handler process: `python -m x15g.isolate.handler FD`, started fresh by a worker's pool.

FD is its end of the control socket. It reads the setup, opens what it is granted, enters the
sandbox (sandbox.py) and only then imports the application (the WSGI app, or builds the
SPECweb99-like module), says it is ready, and serves hand-overs: each arrives with the client's
socket, is answered by its own greenlet directly on that socket (several at once), through the
same send pipeline as the worker's (server/connection.py: file bodies by sendfile, streamed
bodies, the Connection header), then the socket is closed here and a report goes back to the
worker, which owns the connection again and accounts the answer. The handler never reads from a client socket: the worker has read the head
and the body, and keeps any pipelined bytes after them.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # application code may block on sockets or sleep: it must yield instead

import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import _socket  # noqa: E402
import gevent  # noqa: E402
from gevent import getcurrent  # noqa: E402

# One greenlet per hand-over: without the spawn-tree bookkeeping (a stack walk) a spawn costs
# 1.6 us instead of 3.1 us.
gevent.config.track_greenlet_tree = False

from x15g.app.errorpage import error_response  # noqa: E402
from x15g.app.responder import Responder  # noqa: E402
from x15g.config import Settings  # noqa: E402
from x15g.errors import HTTPError  # noqa: E402
from x15g.http.dates import DateCache  # noqa: E402
from x15g.http.messages import Request, Response, StreamedBody  # noqa: E402
from x15g.isolate import protocol, sandbox  # noqa: E402
from x15g.observability.counters import Counters  # noqa: E402
from x15g.observability.logs import setup_logging  # noqa: E402
from x15g.server.connection import INF, Connection, ConnectionTimeout, PeerGone  # noqa: E402

log = logging.getLogger("x15g.isolate.handler")

_monotonic = time.monotonic
SWEEP_INTERVAL = 0.25  # resolution of --send-timeout, as in the worker
_RealSocket = _socket.socket
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
        self.max_requests = settings.max_keepalive_requests
        self.send_timeout = settings.send_timeout
        self.connections: set[Connection] = set()


class Handler:
    """Answers the hand-overs arriving on `control` with `app`."""

    def __init__(self, control: socket.socket, app: Responder, settings: Settings) -> None:
        self.control = control
        self.app = app
        self.ctx = HandlerContext(settings)

    def serve(self) -> None:
        sweeper = self.ctx.loop.timer(SWEEP_INTERVAL, SWEEP_INTERVAL, ref=False)
        sweeper.start(self._sweep)
        protocol.send(self.control, protocol.encode_report(protocol.Report(0, 0, 0, False, False)))
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
                log.error("hand-over without a client socket; ignored")
                continue
            gevent.spawn(self.answer, data, fds)

    def answer(self, data: bytes, fds: list[int]) -> None:
        # The C socket type (no gevent wrapper to change its flags), told its family instead of
        # asking the kernel (three system calls): only send and close are used on it.
        raw = _RealSocket(socket.AF_INET, socket.SOCK_STREAM, 0, fds[0])
        request_id = 0
        status, sent, keep, begun = 500, 0, False, False
        try:
            request_id, request, keep_allowed = protocol.decode_request(data, fds[1] if len(fds) > 1 else -1)
            response = self._respond(request)
            status = response.status
            sent, keep, begun = self._send(raw, request, response, keep_allowed)
        except Exception:  # a bug costs this request, never the handler
            log.exception("hand-over %d failed", request_id)
            keep = False
        finally:
            raw.close()  # before the report: the worker is then the socket's only owner
        try:
            protocol.send(self.control, protocol.encode_report(protocol.Report(request_id, status, sent, keep, begun)))
        except OSError:
            pass  # the worker is gone

    def _respond(self, request: Request) -> Response:
        head_only = request.method == "HEAD"
        try:
            return self.app.respond(request)
        except HTTPError as error:
            return error_response(error, head_only)
        except Exception:
            log.exception("error answering %s %r", request.method, request.target)
            return error_response(HTTPError(500, "internal error", close=True), head_only)

    def _send(self, raw: Any, request: Request, response: Response, keep_allowed: bool) -> tuple[int, bool, bool]:
        """Send through the pipeline: (body bytes sent, keep the connection, anything sent)."""
        body = response.body
        closes = response.close or (type(body) is StreamedBody and body.length is None and request.version != 11)
        connection = Connection(raw, None, self.ctx)
        connection._peer = request.peer
        connection.greenlet = getcurrent()
        out = connection._built(response, request, keep_allowed and request.keep_alive and not closes, _monotonic())
        out.method = None  # accounted by the worker, from the report
        self.ctx.connections.add(connection)
        try:
            connection._deliver(out, True)
        except PeerGone:
            out.keep = False
        finally:
            self.ctx.connections.discard(connection)
        return out.sent, out.keep and out.done, out.offset > 0

    def _sweep(self) -> None:
        """Hub timer: throw ConnectionTimeout into answers stalled past --send-timeout."""
        now = _monotonic()
        for connection in [c for c in self.ctx.connections if c.deadline < now]:
            connection.deadline = INF
            connection.greenlet.throw(ConnectionTimeout)


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


def main(argv: list[str]) -> int:
    # In the server's process group (its CPU and its killpg include us), but stopping is the
    # worker's business: a handler ends when its control socket closes, after its answers.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
    # Until the sandbox closed every other fd, nothing may create gevent's hub (its epoll fd
    # would be closed under it): the setup is read on the bare, blocking C socket.
    setup_socket = _RealSocket(fileno=int(argv[0]))
    data, _ = protocol.receive(setup_socket)  # a spare process waits here (pool.take_process)
    if not data:
        return 0  # a spare the worker no longer needs
    setup = protocol.decode_setup(data)
    values = setup["settings"]
    settings = Settings(**{name: tuple(v) if type(v) is list else v for name, v in values.items()})
    setup_logging("-", settings.log_level)
    plan = sandbox.Plan(**setup["plan"])
    plan.keep = [0, 1, 2, setup_socket.fileno()]
    try:
        grants, enforced, missing = sandbox.apply(plan)
    except (sandbox.SandboxUnavailable, OSError, KeyError) as exc:
        log.error("isolated handler %d: sandbox not set up: %s", os.getpid(), exc)
        return EXIT_SANDBOX
    _import_through(grants)
    control = socket.socket(fileno=setup_socket.detach())  # gevent's, from here on
    if setup.get("announce"):
        log.info("isolated handler %d: %s", os.getpid(), ", ".join(enforced))
    for part in missing:
        log.warning("isolated handler %d: NOT enforced: %s", os.getpid(), part)
    app = build_app(setup, settings, grants)
    Handler(control, app, settings).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
