"""The handler process: `python -m x15g.isolate.handler FD`, started fresh by a worker's pool.

FD is its end of the control socket. It reads the setup, opens what it is granted, enters the
sandbox (sandbox.py) and only then imports the application (the WSGI app, or builds the
SPECweb99-like module), says it is ready, and serves hand-overs: each arrives with the client's
socket, is answered by its own greenlet directly on that socket (several at once; file bodies by
sendfile), then the socket is closed here and a report goes back to the worker, which owns the
connection again. The handler never reads from a client socket: the worker has read the head
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
from typing import Any  # noqa: E402

import _socket  # noqa: E402
import gevent  # noqa: E402
from gevent.socket import wait_write  # noqa: E402

from x15g.app.errorpage import error_response  # noqa: E402
from x15g.app.responder import Responder  # noqa: E402
from x15g.config import Settings  # noqa: E402
from x15g.errors import HTTPError  # noqa: E402
from x15g.http.dates import DateCache  # noqa: E402
from x15g.http.messages import FileRange, Request, Response  # noqa: E402
from x15g.isolate import protocol, sandbox  # noqa: E402
from x15g.observability.logs import setup_logging  # noqa: E402
from x15g.server.sendfile import FileShrunk, send_file  # noqa: E402

log = logging.getLogger("x15g.isolate.handler")

_KEEP_11 = b"\r\n"
_KEEP_10 = b"Connection: keep-alive\r\n\r\n"
_CLOSE = b"Connection: close\r\n\r\n"
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
_RealSocket = _socket.socket
EXIT_SANDBOX = 3  # the sandbox could not be set up as required (the worker logs why)


class Handler:
    """Answers the hand-overs arriving on `control` with `app`."""

    def __init__(self, control: socket.socket, app: Responder, settings: Settings) -> None:
        self.control = control
        self.app = app
        self.dates = DateCache()
        self.send_timeout = settings.send_timeout

    def serve(self) -> None:
        protocol.send(self.control, protocol.encode_report(protocol.Report(0, 0, 0, False, False)))
        while True:
            try:
                data, fds = protocol.receive(self.control)
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
        raw = _RealSocket(fileno=fds[0])  # the C socket type: no gevent wrapper to change its flags
        request_id = 0
        status, sent, keep, begun = 500, 0, False, False
        try:
            request_id, request, keep_allowed = protocol.decode_request(data, fds[1] if len(fds) > 1 else -1)
            response = self._respond(request)
            status = response.status
            keep = keep_allowed and request.keep_alive and not response.close
            sent, begun = self._send(raw, response, request, keep)
        except _Broken as broken:
            keep, begun = False, broken.begun
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

    def _send(self, raw: Any, response: Response, request: Request, keep: bool) -> tuple[int, bool]:
        """Write the answer as the worker would: head + Date + Connection, then the body."""
        tail = (_KEEP_11 if request.version == 11 else _KEEP_10) if keep else _CLOSE
        head = response.head + self.dates.header() + tail
        writer = _Writer(raw, self.send_timeout)
        fd = writer.fd
        try:
            body = response.body
            if not response.send_body or request.method == "HEAD":
                writer.write(head)
                return 0, True
            parts = body if type(body) is list else [body]
            pending = head
            sent = 0
            for part in parts:
                if type(part) is FileRange:
                    if pending:
                        writer.write(pending, _MSG_MORE)
                        pending = b""
                    send_file(fd, part, writer.wait)
                    writer.begun = True
                    sent += part.count
                else:
                    pending += part
                    sent += len(part)
            if pending:
                writer.write(pending)
            return sent, True
        except (OSError, FileShrunk, gevent.Timeout) as exc:
            log.info("%s: answer to %s %r cut short: %s", request.peer, request.method, request.target, exc)
            raise _Broken(writer.begun) from None
        finally:
            if response.release is not None:
                response.release()


class _Broken(Exception):
    def __init__(self, begun: bool) -> None:
        self.begun = begun


class _Writer:
    """Blocking-cooperative writes to the client socket, `timeout` per stall. The socket is
    already non-blocking: the flag belongs to the open file, shared with the worker, so it is
    never changed here."""

    __slots__ = ("raw", "fd", "timeout", "begun")

    def __init__(self, raw: Any, timeout: float) -> None:
        self.raw = raw
        self.fd = raw.fileno()
        self.timeout = timeout
        self.begun = False

    def wait(self) -> None:
        wait_write(self.fd, timeout=self.timeout, timeout_exc=gevent.Timeout(self.timeout))

    def write(self, data: bytes, flags: int = 0) -> None:
        view = memoryview(data)
        send = self.raw.send
        while view:
            try:
                done = send(view, flags)
            except BlockingIOError:
                self.wait()
                continue
            self.begun = True
            view = view[done:]


def build_app(setup: dict[str, Any], settings: Settings, grants: sandbox.Grants) -> Responder:
    """The application, imported or built inside the sandbox."""
    kind = setup["kind"]
    if kind == "specweb":
        from dataclasses import replace

        from x15g.diskio import DiskIO
        from x15g.specweb.responder import SpecwebResponder

        local = replace(settings, root=grants.path(settings.root), specweb_state=grants.path(settings.specweb_state))
        return SpecwebResponder(local, DiskIO(settings.threadpool_size))
    if kind == "wsgi":
        from dataclasses import replace

        from x15g.app.wsgi import WsgiResponder, load_app

        # wsgi.multiprocess: true when more than one process runs the app
        processes = replace(settings, workers=settings.workers * settings.isolate_procs)
        return WsgiResponder(processes, load_app(settings.wsgi), settings.wsgi_prefix)
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
    data, _ = protocol.receive(setup_socket)
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
