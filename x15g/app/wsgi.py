"""Host a WSGI application (PEP 3333) as a responder mounted at a URL prefix.

The app runs in the connection's greenlet, so it may block cooperatively (patched sockets, sleep)
but must not burn CPU for long. What the server gives it:
- `environ` with SCRIPT_NAME = the mount prefix and PATH_INFO = the rest, both percent-decoded and
  carried as latin-1 "bytes-as-str" (PEP 3333 §"Unicode issues"); headers as HTTP_*; headers
  whose name contains `_` are dropped so they cannot pose as ones with `-` (nginx, gunicorn).
- `wsgi.input`: the connection has read the whole body already (Content-Length or chunked,
  bounded by `--max-body-size`, 413 above), so it is an `io.BytesIO`; CONTENT_LENGTH is the
  decoded length and `wsgi.input_terminated` is true.
- `wsgi.errors` writes lines to the error log (logger `x15g.wsgi`).
- `wsgi.file_wrapper`: an app returning `environ["wsgi.file_wrapper"](f)` for a real file is
  answered with `os.sendfile` from the file's descriptor, the same path as static files.

The app's output is collected before the head is written (no streaming yet): iterables are joined
into one body and Content-Length is computed, so a large generator is held in memory. Any exception
from the app, or a malformed status/header, is answered 500 and its traceback logged; the worker
keeps serving.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import logging
import os
import re
import sys
from typing import Any, Callable, Iterable
from urllib.parse import unquote_to_bytes

from x15g import SERVER_SOFTWARE
from x15g.errors import ConfigError, HTTPError
from x15g.http.messages import FileRange, Request, Response
from x15g.http.writer import build_head

log = logging.getLogger("x15g.wsgi")

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS = re.compile(r"^([1-9][0-9]{2}) [^\r\n]*$")
# PEP 3333: hop-by-hop headers belong to the server; an app must not set them (RFC 9110 §7.6.1).
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailers", "transfer-encoding", "upgrade"))
_SERVER_SET = frozenset(("content-length", "date", "server"))


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


class ErrorStream:
    """`wsgi.errors`: text written by the app becomes error-log lines."""

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            log.error("%s", self._pending)
            self._pending = ""


class _Start:
    """The `start_response` of one request (PEP 3333 §"The start_response() Callable")."""

    __slots__ = ("status", "headers", "chunks")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if self.status and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        # Nothing is sent before the app returns, so a later call with exc_info replaces the head.
        match = _STATUS.match(status) if type(status) is str else None
        if match is None:
            raise AssertionError(f"bad WSGI status {status!r}")
        self.headers = [_checked_header(name, value) for name, value in headers]
        self.status = int(match.group(1))
        return self.chunks.append  # the legacy write() callable


def _checked_header(name: Any, value: Any) -> tuple[str, str]:
    if type(name) is not str or type(value) is not str or not _TOKEN.match(name):
        raise AssertionError(f"bad WSGI header {name!r}: {value!r}")
    if name.lower() in _HOP_BY_HOP:
        raise AssertionError(f"hop-by-hop header {name!r} set by the application")
    if any(ch in value for ch in "\r\n\0"):
        raise AssertionError(f"header {name!r} contains CR, LF or NUL")
    value.encode("latin-1")  # PEP 3333: header values are latin-1 strings
    return name, value


class WsgiResponder:
    """Call `app` for requests under `prefix` ("/" or "/some/path", no trailing slash needed)."""

    def __init__(self, settings: Any, app: Callable[..., Any], prefix: str = "/") -> None:
        self.app = app
        self.script_name = prefix.rstrip("/")
        self.errors = ErrorStream()
        self.default_host, self.default_port = _server_address(settings.bind[0] if settings.bind else "")
        self.multiprocess = settings.workers > 1

    def respond(self, request: Request) -> Response:
        environ = self.environ(request)
        start = _Start()
        result = None
        try:
            result = self.app(environ, start)
            if type(result) is FileWrapper and start.status:
                response = self._file_response(request, start, result)
                if response is not None:
                    result = None  # the Response's release closes it after sendfile
                    return response
            body = b"".join(start.chunks) + b"".join(result)
            if not start.status:
                raise AssertionError("the application returned without calling start_response")
        except HTTPError:
            raise
        except Exception:
            log.exception("WSGI application failed on %s %r", request.method, request.target)
            raise HTTPError(500, "internal error") from None
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("WSGI result.close() failed")
        return self._bytes_response(request, start, body)

    def _bytes_response(self, request: Request, start: _Start, body: bytes) -> Response:
        headers = [(n, v) for n, v in start.headers if n.lower() not in _SERVER_SET]
        length = len(body)
        declared = _declared_length(start.headers)
        if request.method == "HEAD" and declared is not None and not body:
            length = declared  # a HEAD answer describes the GET body (RFC 9110 §9.3.2)
        elif declared is not None and declared != length:
            log.warning("WSGI app declared Content-Length %d but sent %d bytes; sending %d", declared, length, length)
        no_body = start.status in (204, 304) or start.status < 200
        head = build_head(start.status, headers, None if no_body else length)
        return Response(start.status, head, b"" if no_body else body, 0 if no_body else length,
                        send_body=not no_body)

    def _file_response(self, request: Request, start: _Start, wrapper: FileWrapper) -> Response | None:
        """sendfile from the wrapped file's descriptor; None when it has none (iterate instead)."""
        try:
            fd = wrapper.filelike.fileno()
            offset = wrapper.filelike.tell()
            size = os.fstat(fd).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        count = max(0, size - offset)
        declared = _declared_length(start.headers)
        if declared is not None:
            count = min(count, declared)
        headers = [(n, v) for n, v in start.headers if n.lower() not in _SERVER_SET]
        head = build_head(start.status, headers, count)
        return Response(start.status, head, FileRange(fd, offset, count), count, release=wrapper.close)

    def environ(self, request: Request) -> dict[str, Any]:
        """The PEP 3333 environ for `request`."""
        path = unquote_to_bytes(request.path).decode("latin-1")
        script = self.script_name
        path_info = path[len(script):] if script and path.startswith(script) else path
        host, port = _split_host(request.headers.get(b"host"), self.default_host, self.default_port)
        remote, _, remote_port = request.peer.rpartition(":") if request.peer != "unix" else ("", "", "")
        env: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": script,
            "PATH_INFO": path_info,
            "QUERY_STRING": request.query.decode("latin-1"),
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": f"HTTP/{request.version // 10}.{request.version % 10}",
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "REMOTE_ADDR": remote.strip("[]"),
            "REMOTE_PORT": remote_port,
            "RAW_URI": request.target.decode("latin-1"),
            "CONTENT_LENGTH": str(len(request.body)) if request.has_body else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.input_terminated": True,
            "wsgi.errors": self.errors,
            "wsgi.multithread": False,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        for name, value in request.headers.items():
            if b"_" in name:
                continue
            key = name.decode("latin-1").upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                env["CONTENT_TYPE"] = value.decode("latin-1")
            elif key != "CONTENT_LENGTH":
                env["HTTP_" + key] = value.decode("latin-1")
        return env


def _declared_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _split_host(value: bytes | None, host: str, port: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host header (`name`, `name:port`, `[v6]:port`)."""
    if not value:
        return host, port
    text = value.decode("latin-1")
    name, sep, port_text = text.rpartition(":")
    if sep and port_text.isdigit() and not name.endswith(":"):
        return name.strip("[]"), port_text
    return text.strip("[]"), port


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

    def __init__(self, static: Any, app: WsgiResponder) -> None:
        self.static = static
        self.app = app

    def respond(self, request: Request) -> Response:
        if request.method == "GET" or request.method == "HEAD":
            try:
                return self.static.respond(request)
            except HTTPError as error:
                if error.status not in (403, 404):
                    raise
        return self.app.respond(request)


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
