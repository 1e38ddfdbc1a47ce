"""`start_response` (PEP 3333) and the response head it leads to.

Apps send the same status strings and header lists again and again, so each distinct status,
each distinct (name, value) pair and each distinct list of them is checked and encoded once per
worker and then looked up: a repeated `start_response` is two dict lookups, and a request's head
is the app's status line with our Server line, the list's ready-made block and the request ID.
Checks: a status is `NNN reason`; names are tokens; values are latin-1 without CR, LF or NUL;
hop-by-hop fields belong to the server (RFC 9110 §7.6.1). Content-Length is taken from the app
(the responder holds the body to it); the app's Date and Server are replaced by ours.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from greenlet import getcurrent

from x15g import SERVER_SOFTWARE
from x15g.app.wsgi_runner import SIGNAL, WROTE, report_to

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_STATUS = re.compile(r"([1-9][0-9]{2}) [^\r\n\0]*\Z")
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailers", "transfer-encoding", "upgrade"))
_REPLACED = frozenset(("date", "server"))
SERVER_LINE = b"Server: " + SERVER_SOFTWARE.encode() + b"\r\n"
_CACHE_SIZE = 4096
_DROP = b""

# "200 OK" -> (200, b"HTTP/1.1 200 OK\r\nServer: x15g/...\r\n"); (name, value) -> its line,
# b"" (dropped) or an int (a Content-Length, whose line the responder writes itself); a whole
# header list (as a tuple) -> (its lines joined, its Content-Length or None, sets X-Request-ID).
_statuses: dict[str, tuple[int, bytes]] = {}
_pairs: dict[tuple[str, str], bytes | int] = {}
_header_sets: dict[tuple, tuple[bytes, int | None, bool]] = {}
_request_id_lines: set[bytes] = set()  # the app's own X-Request-ID lines: then ours is not added


class AppError(Exception):
    """The application broke PEP 3333 (bad status or header, start_response misuse, wrong types)."""


def _status(status: Any) -> tuple[int, bytes]:
    known = _statuses.get(status) if type(status) is str else None
    if known is not None:
        return known
    match = _STATUS.match(status) if type(status) is str else None
    if match is None:
        raise AppError(f"bad status {status!r} (expected a str like '200 OK')")
    try:
        line = b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n" + SERVER_LINE
    except UnicodeEncodeError:
        raise AppError(f"status {status!r} is not latin-1") from None
    if len(_statuses) >= _CACHE_SIZE:
        _statuses.clear()
    known = _statuses[status] = (int(match.group(1)), line)
    return known


def _pair(pair: Any) -> bytes | int:
    try:
        known = _pairs.get(pair)
    except TypeError:  # a list, not a tuple: checked below, not cached
        known = None
    if known is not None:
        return known
    if type(pair) not in (tuple, list) or len(pair) != 2:
        raise AppError(f"header {pair!r} is not a (name, value) tuple")
    name, value = pair
    if type(name) is not str or type(value) is not str:
        raise AppError(f"header {name!r}: {value!r}: name and value must be str")
    if not _TOKEN.match(name):
        raise AppError(f"bad header name {name!r}")
    lower = name.lower()
    if lower in _HOP_BY_HOP:
        raise AppError(f"hop-by-hop header {name!r} set by the application")
    if "\r" in value or "\n" in value or "\0" in value:
        raise AppError(f"header {name!r} contains CR, LF or NUL")
    if lower == "content-length":
        value = value.strip()
        if not value.isdigit() or not value.isascii():
            raise AppError(f"bad Content-Length {value!r}")
        result: bytes | int = int(value)
    elif lower in _REPLACED:
        result = _DROP
    else:
        try:
            result = f"{name}: {value}\r\n".encode("latin-1")
        except UnicodeEncodeError:
            raise AppError(f"header {name!r} is not latin-1 (PEP 3333)") from None
        if lower == "x-request-id" and len(_request_id_lines) < _CACHE_SIZE:
            _request_id_lines.add(result)
    if type(pair) is tuple:
        if len(_pairs) >= _CACHE_SIZE:
            _pairs.clear()
        _pairs[pair] = result
    return result


def _header_set(headers: list) -> tuple[bytes, int | None, bool]:
    """(lines joined, Content-Length or None, whether the app set X-Request-ID) of a header list."""
    try:
        key: tuple | None = tuple(headers)
        known = _header_sets.get(key)  # type: ignore[arg-type]
    except TypeError:  # a pair given as a list: checked by _pair, not cached
        key = known = None
    if known is not None:
        return known
    lines: list[bytes] = []
    length = None
    own_id = False
    for pair in headers:
        encoded = _pair(pair)
        if isinstance(encoded, int):
            length = encoded
        elif encoded:
            lines.append(encoded)
            if encoded in _request_id_lines:
                own_id = True
    known = (b"".join(lines), length, own_id)
    if key is not None:
        if len(_header_sets) >= _CACHE_SIZE:
            _header_sets.clear()
        _header_sets[key] = known
    return known


class StartResponse:
    """The `start_response` of one request and its `write`: while the app call runs (in its
    runner, app/wsgi_runner.py) write() hands each piece to the connection and returns once it
    was sent; afterwards (from the app's iterable) it collects into `written`, sent after the
    chunk being made.

    After `begin()` (the head went out) a second call is allowed only with `exc_info`, and then
    re-raises it as PEP 3333 asks; before, a call with `exc_info` replaces the head.
    """

    __slots__ = ("status", "status_line", "lines", "length", "written", "started", "iterator", "own_id",
                 "runner", "caller", "outcome", "value")

    def __init__(self) -> None:
        self.status = 0
        self.status_line = b""  # with our Server line
        self.lines = b""  # the app's header lines, joined
        self.length: int | None = None  # the app's Content-Length
        self.written: list[bytes] = []
        self.started = False  # the head has been handed to the connection
        self.iterator: Any = None  # the app's iterator once its first chunk was pulled (app/wsgi.py)
        self.own_id = False  # the app set X-Request-ID itself
        self.runner: Any = None  # the greenlet running the app call, while it runs
        self.caller: Any = None  # the connection's greenlet, which write() hands its bytes to
        self.outcome = ""  # what the runner last reported (app/wsgi_runner.py), with `value`
        self.value: Any = None

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status:
            raise AppError("start_response called twice without exc_info")
        code, line = _status(status)
        if type(headers) is not list:
            raise AppError(f"response headers must be a list, not {type(headers).__name__}")
        self.lines, self.length, self.own_id = _header_set(headers)
        self.status, self.status_line = code, line
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write(): during the app call the bytes are sent before it returns (the
        connection resumes the runner once they left; ClientGone if the answer ended first)."""
        if type(data) is not bytes:
            raise AppError(f"write() takes bytes, not {type(data).__name__}")
        if not self.status:
            raise AppError("write() called before start_response")
        runner = self.runner
        if runner is not None and getcurrent() is runner:
            if data:
                self.outcome, self.value = WROTE, data
                report_to(self.caller, SIGNAL)  # back once the connection sent it (or ClientGone)
            return
        self.written.append(data)

    def head(self, length: int | None, request_id: str) -> bytes:
        """Status line, Server, the app's lines, X-Request-ID (unless the app set one) and
        Content-Length (when not None)."""
        head = self.status_line + self.lines
        if not self.own_id:
            head += b"X-Request-ID: " + request_id.encode("latin-1") + b"\r\n"
        if length is not None:
            head += b"Content-Length: %d\r\n" % length
        return head
