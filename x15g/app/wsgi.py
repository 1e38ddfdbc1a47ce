"""Host a WSGI application (PEP 3333) as a responder mounted at a URL prefix.

The app runs in the connection's greenlet, so it may block cooperatively (patched sockets, sleep);
code that holds the CPU for longer than `--timeout` is ended by the watchdog (server/watchdog.py).
What the server gives it:
- `environ` (app/wsgi_environ.py): SCRIPT_NAME = the mount prefix, PATH_INFO = the rest, CGI
  variables by the letter (CONTENT_LENGTH only when the request has one), the client and scheme
  a trusted proxy forwarded (http/forwarded.py), HTTP_X_REQUEST_ID (the proxy's or generated).
- `wsgi.input`: the body straight from the socket as the app reads it (server/bodyreader.py;
  chunked bodies too, then without CONTENT_LENGTH; `wsgi.input_terminated` is true); nothing is
  held by the server, `--max-body-size` gives 413.
- `wsgi.errors` writes lines to the error log (logger `x15g.wsgi`).
- `wsgi.file_wrapper`: an app returning `environ["wsgi.file_wrapper"](f)` for a real file is
  answered with `os.sendfile` from the file's descriptor, the same path as static files.

The app call runs in a pooled runner greenlet (app/wsgi_runner.py) so that `write()` can send:
its bytes go out (head first, then chunked or to the app's Content-Length) and write() returns
once they left, raising ClientGone (a BrokenPipeError) when the answer ended first. The runner
also lets a request without a body start its call from the event loop (`respond_now`): a call
that returns a list at once is answered there, with no switch to the connection's greenlet; one
that waits, writes, streams or fails is joined by that greenlet (`respond`), never run twice.

The answer (app/wsgi_head.py checks status and headers and builds the head): a list or tuple
of bytes is joined and sent with the head in one write; any other iterable is streamed, each
chunk as the app makes it (the connection's StreamedBody: the app's Content-Length held exactly,
else chunked for HTTP/1.1, up to the close for HTTP/1.0; a slow client suspends the generator);
the head waits for the first non-empty chunk, as PEP 3333 asks. The app's Content-Length is
kept on every path: more bytes are cut, fewer close the connection after them. Every answer
carries X-Request-ID. An exception or a PEP 3333 violation before the first byte is a 500 (the
traceback, or one line naming the violation, in the error log); after it, the connection closes
without finishing the body. `close()` of the iterable is always called. The worker keeps serving.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import itertools
import logging
import os
import sys
from typing import Any, Callable, Iterable, Iterator

from greenlet import getcurrent

from x15g.app.wsgi_environ import EMPTY_INPUT, EnvironBuilder
from x15g.app.wsgi_head import AppError, StartResponse
from x15g.app.wsgi_runner import RAISED, RETURNED, SIGNAL, WROTE, ClientGone, RunnerPool, drive, run_out
from x15g.errors import ConfigError, HTTPError
from x15g.http.messages import FileRange, Request, Response, StreamedBody
from x15g.observability.inflight import current as inflight
from x15g.static.filecache import Answer

log = logging.getLogger("x15g.wsgi")
_END = object()  # the end of an app's iterator (next's default)


def _import_from_cwd() -> None:
    """Let `--wsgi myapp:app` find `myapp.py` in the working directory, as `python -m` and
    gunicorn do (the `x15g` console script's sys.path starts with its own bin directory)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load_app(spec: str) -> Callable[..., Any]:
    """`package.module:attribute` (attribute may be dotted) -> the WSGI callable."""
    module_name, _, attr = spec.partition(":")
    _import_from_cwd()
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--wsgi {spec!r}: {exc}") from exc
    if not callable(target):
        raise ConfigError(f"--wsgi {spec!r} is not callable")
    return target


class FileWrapper:
    """`wsgi.file_wrapper`: iterates blocks like PEP 3333 asks, and lets the server sendfile."""

    def __init__(self, filelike: Any, block_size: int = 65536) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterable[bytes]:
        while True:
            data = self.filelike.read(self.block_size)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class WsgiResponder:
    """Call `app` for requests under `prefix` ("/" or "/some/path", no trailing slash needed)."""

    streams_body = True  # wsgi.input reads the body from the connection as the app asks

    def __init__(self, settings: Any, app: Callable[..., Any], prefix: str = "/") -> None:
        self.app = app
        self.script_name = prefix.rstrip("/")
        host, port = _server_address(settings.bind[0] if settings.bind else "")
        self.environs = EnvironBuilder(self.script_name, host, port, settings.workers > 1, FileWrapper)
        self.runners = RunnerPool()
        self._hub: Any = None  # gevent's hub of this worker, found on first use
        # Request IDs: a random prefix per worker process (this runs after fork) and a counter.
        self._id_prefix = os.urandom(6).hex() + "-"
        self._ids = itertools.count(1)

    def respond(self, request: Request) -> Response:
        start = request.app_call
        if start is not None:  # respond_now began the call and it had to wait: join it
            request.app_call = None
            self._join(request, start)
        else:
            start = self._begin(request, False)
        return self._answer(request, start)

    def respond_now(self, request: Request) -> Response | None:
        """Run the app from the hub, in its runner: a call that finishes at once with a list or
        tuple is answered right here, without handing the request to the connection's greenlet
        (~9 us of a hello-world's ~26). Anything else (the call waits on I/O, writes, streams,
        fails) stays with the request (`app_call`) and None sends it to `respond`, which joins
        the call where it is: the app never runs twice and never in the hub itself."""
        hub = self._hub
        if hub is None:
            from gevent import get_hub

            hub = self._hub = get_hub()
        if getcurrent() is not hub:
            return None  # the accept loop must not wait for an app call
        start = self._begin(request, True)
        if start.outcome is RETURNED and (type(start.value) is list or type(start.value) is tuple):
            return self._answer(request, start)
        request.app_call = start
        return None

    def _begin(self, request: Request, from_hub: bool) -> StartResponse:
        """Build the environ and run the app call until it reports (from the hub: or waits)."""
        request_id = request.request_id or f"{self._id_prefix}{next(self._ids):x}"
        request.request_id = request_id
        body: Any = request.body_reader
        if body is None:  # no body, or the connection read it whole (an embedding without a router)
            body = io.BytesIO(request.body) if request.body else EMPTY_INPUT
        environ = self.environs.build(request, body, request_id)
        start = StartResponse()
        inflight.method, inflight.target = request.method, request.target
        try:
            if from_hub:
                self.runners.begin(self.app, environ, start)
            else:
                self.runners.call(self.app, environ, start)
        finally:
            inflight.method = None
        return start

    def _join(self, request: Request, start: StartResponse) -> None:
        """Wait (in the connection's greenlet) for a call respond_now began to report."""
        start.caller = getcurrent()  # it reports here from now on
        if start.outcome:
            return  # it reported before we came
        inflight.method, inflight.target = request.method, request.target
        try:
            while not (self._hub.switch() is SIGNAL and start.outcome):
                pass
        except BaseException:
            start.caller = self._hub  # nobody waits any more: its report goes to the hub, unread
            raise
        finally:
            inflight.method = None

    def _answer(self, request: Request, start: StartResponse) -> Response:
        """The Response for an app call that reported: it returned, raised, or wrote."""
        request_id = request.request_id
        result = None
        try:
            outcome = start.outcome
            if outcome is RAISED:
                raise start.value
            if outcome is WROTE:  # write() during the call: the answer streams from here
                return self._written_response(request, start, start.value, request_id)
            result = start.value
            start.value = None
            kind = type(result)
            if kind is list or kind is tuple:
                data = _joined(result, start)
                result = None  # a plain list or tuple has no close(): skip the getattr miss
            elif kind is FileWrapper and start.status and (response := self._file_response(
                    request, start, result, request_id)) is not None:
                result = None  # the Response's release closes it after sendfile
                return response
            else:
                inflight.method, inflight.target = request.method, request.target
                first = _first_chunk(result, start)
                if first is not None:
                    response = self._streamed_response(request, start, result, first, request_id)
                    result = None  # the connection closes it once the stream ends
                    return response
                data = b"".join(start.written)
        except HTTPError:
            raise  # e.g. 413/408 while the app read its body
        except AppError as exc:
            log.error("WSGI application broke PEP 3333 on %s %r: %s", request.method, request.target, exc)
            raise HTTPError(500, "internal error") from None
        except Exception:
            log.exception("WSGI application failed on %s %r", request.method, request.target)
            raise HTTPError(500, "internal error") from None
        finally:
            inflight.method = None
            if result is not None:
                _close(result)
        return self._bytes_response(request, start, data, request_id)

    def _streamed_response(self, request: Request, start: StartResponse, result: Any, first: bytes,
                           request_id: str) -> Response:
        """Each further chunk goes out as the app makes it; the connection holds the body to the
        app's Content-Length, or sends it chunked (HTTP/1.1) or up to the close (HTTP/1.0)."""
        status = start.status
        declared = start.length
        start.started = True  # from now on start_response(..., exc_info) re-raises
        if request.method == "HEAD" or status < 200 or status == 204 or status == 304:
            _close(result)
            return Response(status, start.head(declared, request_id), b"", declared or 0, send_body=False)
        stream = AppStream(request, start, result, first)
        return Response(status, start.head(declared, request_id), StreamedBody(stream, declared), declared or 0)

    def _written_response(self, request: Request, start: StartResponse, first: bytes,
                          request_id: str) -> Response:
        """The answer of an app that called write(): its head and `first` go out now, the app
        resumes once they left; what it writes or returns next follows (AppStream)."""
        status = start.status
        declared = start.length
        start.started = True
        runner = start.runner
        if request.method == "HEAD" or status < 200 or status == 204 or status == 304:
            result = _finish(run_out(runner, start), start, request)  # no body: run to the end, writes dropped
            if result is not None:
                _close(result)
            return Response(status, start.head(declared, request_id), b"", declared or 0, send_body=False)
        stream = AppStream(request, start, None, first, runner)
        return Response(status, start.head(declared, request_id), StreamedBody(stream, declared), declared or 0)

    def _bytes_response(self, request: Request, start: StartResponse, body: bytes, request_id: str) -> Response:
        """The app's Content-Length is kept: more bytes are cut to it, fewer close the connection
        after them so the client sees the truncation; without one it is the body's length."""
        status = start.status
        if status < 200 or status == 204 or status == 304:
            return Response(status, start.head(None, request_id), b"", 0, send_body=False)
        declared = start.length
        close = False
        if declared is None:
            length = len(body)
        else:
            length = declared
            if request.method != "HEAD" and len(body) != declared:
                log.warning("WSGI app declared Content-Length %d but sent %d bytes on %s %r%s", declared,
                            len(body), request.method, request.target,
                            "; cut" if len(body) > declared else "; closing the connection")
                close = len(body) < declared
                body = body[:declared]
        return Response(status, start.head(length, request_id), body, length, close=close,
                        send_body=request.method != "HEAD")

    def _file_response(self, request: Request, start: StartResponse, wrapper: FileWrapper,
                       request_id: str) -> Response | None:
        """sendfile from the wrapped file's descriptor; None when it has none (iterate instead)."""
        try:
            fd = wrapper.filelike.fileno()
            offset = wrapper.filelike.tell()
            size = os.fstat(fd).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        count = max(0, size - offset)
        declared = start.length
        close = False
        if declared is not None:
            close = declared > count  # the file is shorter: send it, then close
            count = min(count, declared)
        head = start.head(count if declared is None else declared, request_id)
        return Response(start.status, head, FileRange(fd, offset, count), count, close=close,
                        release=wrapper.close)


def _joined(result: list | tuple, start: StartResponse) -> bytes:
    """The whole body of a list or tuple result (and of write() calls before it), type-checked."""
    if len(result) == 1 and type(result[0]) is bytes and not start.written:
        data = result[0]  # the common `return [body]`
    else:
        for chunk in result:
            if type(chunk) is not bytes:
                raise AppError(f"the application yielded {type(chunk).__name__} (in its list), not bytes")
        data = b"".join(start.written + list(result)) if start.written else b"".join(result)
    if not start.status:
        raise AppError("the application returned without calling start_response")
    return data


def _first_chunk(result: Any, start: StartResponse) -> bytes | None:
    """Pull chunks until the first non-empty one (PEP 3333: the head waits for it, so a generator
    may still call start_response); None when the iterable ended without one (what write() gave
    is then in `start.written`). The iterator is kept in `start.iterator` for AppStream."""
    if result is None or isinstance(result, (str, bytes)):
        raise AppError(f"the application returned {type(result).__name__}, not an iterable of bytes")
    try:
        iterator = iter(result)
    except TypeError:
        raise AppError(f"the application returned {type(result).__name__}, not an iterable of bytes") from None
    first = b"".join(start.written)
    start.written.clear()
    while not first:
        chunk = next(iterator, _END)
        if chunk is _END:
            if not start.status:
                raise AppError("the application returned without calling start_response")
            start.written.append(first)
            return None
        if type(chunk) is not bytes:
            raise AppError(f"the application yielded {type(chunk).__name__}, not bytes")
        first = chunk
    if not start.status:
        raise AppError("the application yielded before calling start_response")
    start.iterator = iterator
    return first


class AppStream:
    """The chunks of a streamed WSGI answer, for the connection's StreamedBody: the first chunk,
    then (while the app call still runs, waiting in write()) each further write(), then the
    chunks of the iterable it returned and what write() gave meanwhile, each as it comes.
    `close()` (called by the connection however the answer ended) ends the app call if it still
    runs (ClientGone from its write()) and closes the app's iterable."""

    __slots__ = ("request", "start", "result", "first", "runner")

    def __init__(self, request: Request, start: StartResponse, result: Any, first: bytes,
                 runner: Any = None) -> None:
        self.request = request
        self.start = start
        self.result = result
        self.first = first
        self.runner = runner  # the greenlet of an app call that wrote and has not returned yet

    def __iter__(self) -> Iterator[bytes]:
        start = self.start
        written = start.written
        method, target = self.request.method, self.request.target
        yield self.first
        while self.runner is not None:
            inflight.method, inflight.target = method, target
            try:
                outcome = drive(self.runner, start, None)  # write() returns: its bytes left
            finally:
                inflight.method = None
            value, start.value = start.value, None
            if outcome is WROTE:
                yield value
                continue
            self.runner = None
            if outcome is RAISED:
                raise value
            self.result = value
            if value is None or isinstance(value, (str, bytes)):
                raise AppError(f"the application returned {type(value).__name__} after write(), "
                               f"not an iterable of bytes ({method} {target!r})")
            start.iterator = iter(value)
        iterator = start.iterator
        while True:
            inflight.method, inflight.target = method, target  # other streams ran meanwhile
            try:
                chunk = next(iterator, _END)
            finally:
                inflight.method = None
            if written:
                yield b"".join(written)
                written.clear()
            if chunk is _END:
                return
            if type(chunk) is not bytes:
                raise AppError(f"the application yielded {type(chunk).__name__}, not bytes, after "
                               f"its first chunk ({method} {target!r})")
            yield chunk

    def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            gone = ClientGone("the answer ended before the application")
            self.result = _finish(run_out(runner, self.start, gone), self.start, self.request)
        result, self.result = self.result, None
        if result is not None:
            _close(result)


def _finish(outcome: str, start: StartResponse, request: Request) -> Any:
    """What an app call that was run out returned (its iterable, closed by the caller), or None
    when it raised (logged, unless it is the ClientGone its write() was given)."""
    value, start.value = start.value, None
    if outcome is not RAISED:
        return value
    if not isinstance(value, ClientGone):
        log.error("WSGI application failed on %s %r after write()", request.method, request.target,
                  exc_info=value)
    return None


def _close(result: Any) -> None:
    """PEP 3333: close() of the iterable is called whatever happened."""
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("WSGI result.close() failed")


def _server_address(bind: str) -> tuple[str, str]:
    if bind.startswith("unix:"):
        return "localhost", "80"
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "localhost", port or "80"


def app_inside_root(app: Any, root: str) -> bool:
    """True when the app's module file lies under the document root (its source could be served)."""
    module = sys.modules.get(getattr(app, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


class StaticOrApp:
    """The mount at `/`: a GET or HEAD for a file that exists under --root is a static answer;
    when the static responder refuses (404, or 403 for a directory without index or a hidden
    file) the app answers instead, and every other method goes to the app."""

    streams_body = True  # static answers need no body; the app reads its own

    def __init__(self, static: Any, app: WsgiResponder) -> None:
        self.static = static
        self.app = app

    def respond(self, request: Request) -> Response:
        if request.method == "GET" or request.method == "HEAD":
            known = self.static.cache.get(request.path)
            if known is not None and known.__class__ is Answer and known.kind == "error" and known.status in (403, 404):
                return self.app.respond(request)  # refused before: no exception round trip
            try:
                return self.static.respond(request)
            except HTTPError as error:
                if error.status not in (403, 404):
                    raise
        return self.app.respond(request)

    def respond_now(self, request: Request) -> Response | None:
        """The same decision without waiting: a file cached inside its window, or the app's own
        respond_now for a path known to be no file (and for other methods); None when only
        the disk can tell (respond decides in the greenlet)."""
        now = getattr(self.app, "respond_now", None)
        if request.method == "GET" or request.method == "HEAD":
            known = self.static.cache.peek(request.path)
            if known is None:
                return None
            if known.__class__ is Answer and known.kind == "error" and known.status in (403, 404):
                return now(request) if now is not None else None
            return self.static.respond_now(request)
        return now(request) if now is not None else None


def check_app_spec(spec: str) -> None:
    """Master-side check that `MODULE` of `MODULE:CALLABLE` can be found, without running it
    (workers import it after fork); raises ConfigError so a typo stops startup with one line
    instead of workers failing in a loop."""
    module_name = spec.partition(":")[0]
    _import_from_cwd()
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"--wsgi {spec!r}: {exc}") from None
    if found is None:
        raise ConfigError(f"--wsgi {spec!r}: no module named {module_name!r}")
