"""The messages between a worker and its handler processes, over a SOCK_SEQPACKET socketpair.

One datagram per message, so no framing. Worker to handler (trusted direction, `marshal`):
- the setup, once: the settings, what to serve, the sandbox plan, the routes (which requests
  are the handler's), with the handler's progress board (below) attached as a memfd;
- a hand-over: request id, the parsed request, whether keep-alive is allowed, the bytes read
  after the request, how many requests the connection has served, the board slot, with the
  client's socket attached by SCM_RIGHTS (and a memfd holding the body when it is large);
- `DRAIN`: the worker is stopping: answers say `Connection: close`, held connections go back.
The sockets are `socket.socket` or the C `_socket.socket` (the worker reads them from a hub
watcher, without gevent's wrapper): both have sendmsg and recvmsg.
Handler to worker (untrusted direction: fixed structs the worker unpacks, never unpickles, and
checks: numbers that add up, a method that is a token, visible ASCII where the log needs it):
- a report, when the handler gives the connection back: request id, status, body bytes sent,
  flags (keep the connection / answer begun), the bytes read past the last request it answered
  (`leftover`), the X-Request-ID of its answer, and the further requests it answered on the
  connection for the worker to account: their tally (observability.metrics.Tally: the
  duration buckets, counts by method and status, bytes; added to the worker's metrics in one
  go) and, when there is an access log, a record of each (what its line shows of the request:
  method, target, version, Referer, User-Agent, X-Request-ID, the client behind a trusted
  proxy; status, bytes, start and end). Id 0 is the handler saying it is ready.
- a progress report (flag HELD), while the handler still holds the connection: the same fields
  (no leftover), with the further requests answered since the last one; the worker accounts
  them at once and the handler carries on. So a busy held connection never has to come back
  to the worker for its requests to be logged and counted.
- the board: a shared memory page per handler, one slot per connection it holds, where it
  notes when it began the request it is answering now (or, negated, since when it waits for the
  next one) and how many bytes it sent before it, so
  the worker's --isolate-timeout (504) and death handling (502) apply to that request and not
  only to the one it handed over. No message, so no wake-up of the worker, per request.
"""

from __future__ import annotations

import array
import dataclasses
import marshal
import os
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from x15g.http.messages import Answered, Request
from x15g.isolate import sandbox
from x15g.observability.metrics import BUCKETS, METHODS, Tally

# A body up to this size travels inside the message; larger ones in a memfd (a datagram must
# fit the socket buffer).
INLINE_BODY = 64 * 1024
MAX_MESSAGE = INLINE_BODY + 128 * 1024  # head limits are far below this (max_header_size)
_SCM = socket.SCM_RIGHTS
_FD_SPACE = socket.CMSG_SPACE(2 * array.array("i").itemsize)

KEEP = 1  # the handler's answer said keep-alive: the worker reads the next request
BEGUN = 2  # some bytes of the answer reached the socket (a later failure must close)
HELD = 4  # a progress report: the handler still holds the connection
TALLY = 8  # the report carries a tally of further requests
DRAIN = b"drain"
# A handler holding a connection sends a progress report with the tally (and records) of its
# further requests this long after the last one, or once it answered this many, or once their
# records take this many bytes, or their tally this many (method, status) pairs: the worker
# accounts them then (access log, metrics, --max-requests), so they are at most about this
# late, and a report always fits one datagram (MAX_MESSAGE: the records, one more head, the
# leftover of one recv). A report costs the worker one wake-up and a few microseconds.
BATCH_SECONDS = 1.0
BATCH_REQUESTS = 256
BATCH_BYTES = 16 * 1024
BATCH_CODES = 64
# What owns the requests a route (or the router's default) gets, in the handlers' route table.
MINE = "mine"  # this pool's application
OTHER = "other"  # anything else: the handler gives the connection back
STATIC_OR_MINE = "static-or-mine"  # the WSGI app at "/": a static file that exists wins (app/wsgi.py)
MAX_REQUEST_ID = 200  # bytes of an X-Request-ID in a report
_REPORT = struct.Struct("<IHQBIHH")  # id, status, sent, flags, leftover, further requests, X-Request-ID
# A record: status, sent, started, ended, then the lengths of the request's bytes and of its
# X-Request-ID. The request's bytes: version and the lengths of method, target, path, query,
# Referer, User-Agent (_ABSENT: no such header) and client (empty: the connection's), then those.
# The worker keeps the Request made from the same bytes (clients repeat their heads).
_RECORD = struct.Struct("<HQddIB")
_REQUEST = struct.Struct("<BBHHHHHB")
RECORD_SIZE = _RECORD.size + _REQUEST.size
_ABSENT = 0xFFFF
KNOWN_REQUESTS = 4096  # distinct request bytes kept decoded (then forgotten all at once)
KNOWN_SIZE = 2048  # longer request bytes are decoded each time
MAX_CLIENT = 64
_TALLY = struct.Struct("<QQH%dI" % (len(BUCKETS) + 1))  # sum_us, bytes sent, codes, buckets
_CODE = struct.Struct("<BHI")  # method (index in METHODS; _OTHER_METHOD for others), status, requests
_OTHER_METHOD = 255
_METHOD_INDEX = {m: i for i, m in enumerate(METHODS)}
REPORT_SIZE = _REPORT.size


@dataclass(slots=True)
class Report:
    """What a handler says when it gives a connection back (or the worker's own failure answer)."""

    request_id: int
    status: int
    sent: int
    keep: bool
    begun: bool
    leftover: bytes = b""
    further: list[Answered] = dataclasses.field(default_factory=list)  # the access log's records
    app_request_id: str = ""
    held: bool = False  # a progress report: the connection is still the handler's
    tally: Tally | None = None  # the further requests (`further` holds their records if logged)


def encode_report(report: Report) -> bytes:
    rid = _visible(report.app_request_id, MAX_REQUEST_ID)
    tally = report.tally
    flags = (KEEP if report.keep else 0) | (BEGUN if report.begun else 0) | (HELD if report.held else 0)
    if tally is not None:
        flags |= TALLY
    parts = [_REPORT.pack(report.request_id, report.status, report.sent, flags,
                          len(report.leftover), len(report.further), len(rid)), rid, report.leftover]
    if tally is not None:
        parts.append(_TALLY.pack(tally.sum_us, tally.bytes_sent, len(tally.codes), *tally.buckets))
        index = _METHOD_INDEX.get
        parts += [_CODE.pack(index(method, _OTHER_METHOD), status, n) for (method, status), n in tally.codes.items()]
    for answered in report.further:
        request = _request_bytes(answered.request)
        rid = _visible(answered.request_id, MAX_REQUEST_ID)
        parts += [_RECORD.pack(answered.status, answered.sent, answered.started, answered.ended, len(request),
                               len(rid)), request, rid]
    return b"".join(parts)


def record_size(answered: Answered) -> int:
    """About the bytes `answered` takes in a report (at least as many)."""
    request = answered.request
    headers = request.headers
    return (RECORD_SIZE + MAX_CLIENT + len(request.method) + 2 * len(request.target) + len(answered.request_id)
            + len(headers.get(b"referer") or b"") + len(headers.get(b"user-agent") or b""))


def _request_bytes(request: Request) -> bytes:
    """What an access-log line shows of `request`, as a record carries it."""
    headers = request.headers
    referer, agent = headers.get(b"referer"), headers.get(b"user-agent")
    referer, agent = (None if v is None else _cut(v) for v in (referer, agent))
    method = request.method.encode("ascii", "replace")[:255]
    client = _visible(request.peer, MAX_CLIENT) if request.forwarded else b""
    target, path, query = _cut(request.target), _cut(request.path), _cut(request.query)
    return b"".join((_REQUEST.pack(request.version, len(method), len(target), len(path), len(query),
                                   _ABSENT if referer is None else len(referer),
                                   _ABSENT if agent is None else len(agent), len(client)),
                     method, target, path, query, referer or b"", agent or b"", client))


def _visible(text: str, limit: int) -> bytes:
    """`text` as a report carries it: visible ASCII (anything else becomes "?"), at most
    `limit` bytes; what decode_report accepts of an X-Request-ID or a client address (a proxy
    may send a space, an IPv6 scope id may hold anything)."""
    raw = text.encode("ascii", "replace")[:limit]
    return raw if _VISIBLE.fullmatch(raw) else _INVISIBLE.sub(b"?", raw)


def _cut(value: bytes) -> bytes:
    """A field of a record, cut to what its length field holds (a header that long is cut in the log)."""
    return value if len(value) < _ABSENT else value[:_ABSENT - 1]


def decode_report(data: bytes) -> Report:
    """Raises ValueError on anything but a well-formed report (the handler is not trusted)."""
    if len(data) < REPORT_SIZE:
        raise ValueError(f"handler report of {len(data)} bytes")
    request_id, status, sent, flags, leftover_len, count, rid_len = _REPORT.unpack_from(data)
    at = REPORT_SIZE
    rid = _ascii(data[at:at + rid_len])
    at += rid_len
    leftover = data[at:at + leftover_len]
    at += leftover_len
    tally = None
    if flags & TALLY:
        tally, at = _decode_tally(data, at)
        if count and count != tally.requests:
            raise ValueError("handler report with records that are not its tally's")
    elif count:
        raise ValueError("handler report with records and no tally")
    further = []
    size = len(data)
    unpack = _RECORD.unpack_from
    known = _known_requests
    latest = time.monotonic() + 1.0  # the clock every process shares: no record ends later
    for _ in range(count):
        if at + _RECORD.size > size:
            raise ValueError("handler report cut short")
        f_status, f_sent, started, ended, request_len, rid_len = unpack(data, at)
        if not 0.0 <= started <= ended <= latest:  # also NaN
            raise ValueError("handler report with a request that did not take place in time")
        at += _RECORD.size
        raw = data[at:at + request_len]
        at += request_len
        request = known.get(raw)
        if request is None:
            request = _decoded_request(raw)
        frid = ""
        if rid_len:  # most answers have none
            frid = _ascii(data[at:at + rid_len])
            at += rid_len
        further.append(Answered(request, f_status, f_sent, started, ended, frid))
    if at != len(data) or len(leftover) != leftover_len:
        raise ValueError("handler report of the wrong length")
    held = bool(flags & HELD)
    if held and leftover:
        raise ValueError("progress report with leftover bytes")
    return Report(request_id, status, sent, bool(flags & KEEP), bool(flags & BEGUN), leftover, further, rid, held,
                  tally)


def _decode_tally(data: bytes, at: int) -> tuple[Tally, int]:
    if at + _TALLY.size > len(data):
        raise ValueError("handler report cut short")
    sum_us, sent, count, *buckets = _TALLY.unpack_from(data, at)
    at += _TALLY.size
    if count > BATCH_CODES:  # a handler reports before that
        raise ValueError("handler report with more codes than a batch")
    if at + count * _CODE.size > len(data):
        raise ValueError("handler report cut short")
    tally = Tally()
    tally.sum_us, tally.bytes_sent, tally.buckets = sum_us, sent, buckets
    codes = tally.codes
    for method, status, n in _CODE.iter_unpack(data[at:at + count * _CODE.size]):
        name = METHODS[method] if method < len(METHODS) else "OTHER"
        codes[name, status] = codes.get((name, status), 0) + n
    tally.requests = sum(codes.values())
    if sum(buckets) != tally.requests:
        raise ValueError("handler report with a tally that does not add up")
    if tally.requests > BATCH_REQUESTS:  # a handler reports before that
        raise ValueError("handler report with more requests than a batch")
    return tally, at + count * _CODE.size


_known_requests: dict[bytes, Request] = {}  # a record's request bytes -> the Request made of them


def _decoded_request(raw: bytes) -> Request:
    """The Request (as its access-log line shows it; the rest unset) that a record's request
    bytes carry, kept for the next record with the same bytes."""
    if len(raw) < _REQUEST.size:
        raise ValueError("handler report cut short")
    version, method_len, target_len, path_len, query_len, referer_len, agent_len, client_len = _REQUEST.unpack_from(raw)
    headers = {}
    at = _REQUEST.size + method_len
    method = raw[_REQUEST.size:at]
    target = raw[at:at + target_len]
    at += target_len
    path = raw[at:at + path_len]
    at += path_len
    query = raw[at:at + query_len]
    at += query_len
    if referer_len != _ABSENT:
        headers[b"referer"] = raw[at:at + referer_len]
        at += referer_len
    if agent_len != _ABSENT:
        headers[b"user-agent"] = raw[at:at + agent_len]
        at += agent_len
    client = raw[at:at + client_len]
    if (at + client_len != len(raw) or _ABSENT in (target_len, path_len, query_len) or version not in (10, 11)
            or not _TOKEN.fullmatch(method)):
        raise ValueError("bad request in a handler report")
    if _VISIBLE.fullmatch(client) is None:
        raise ValueError("bad client address in a handler report")
    request = Request(method.decode("ascii"), target, path, query, version, headers, True, peer=client.decode("ascii"),
                      forwarded=bool(client))
    if len(raw) <= KNOWN_SIZE:  # a long one is seldom repeated, and memory is bounded
        if len(_known_requests) >= KNOWN_REQUESTS:
            _known_requests.clear()
        _known_requests[raw] = request
    return request


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: a method


def _ascii(raw: bytes) -> str:
    """An X-Request-ID from a report: visible ASCII only (it goes into the access log)."""
    if len(raw) > MAX_REQUEST_ID or _VISIBLE.fullmatch(raw) is None:
        raise ValueError("bad X-Request-ID in a handler report")
    return raw.decode("ascii")


_VISIBLE = re.compile(rb"[\x21-\x7e]*")
_INVISIBLE = re.compile(rb"[^\x21-\x7e]")


class Board:
    """A handler's progress board (see the module doc): `slots` slots of (started, sent before)
    in a memfd both processes map. The worker makes it and reads it; the handler writes it."""

    _SLOT = struct.Struct("<dQ")

    def __init__(self, slots: int, fd: int = -1) -> None:
        import mmap

        size = max(1, slots) * self._SLOT.size
        own = fd < 0
        if own:
            fd = os.memfd_create("x15g-board", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
        else:
            size = os.fstat(fd).st_size
        self.map = mmap.mmap(fd, size)
        self.slots = size // self._SLOT.size
        self.fd = fd if own else -1
        if not own:
            os.close(fd)  # the mapping stays

    def note(self, slot: int, started: float, sent_before: int) -> None:
        if 0 <= slot < self.slots:
            self._SLOT.pack_into(self.map, slot * self._SLOT.size, started, sent_before)

    def read(self, slot: int) -> tuple[float, int]:
        return self._SLOT.unpack_from(self.map, slot * self._SLOT.size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def encode_request(request_id: int, request: Request, keep_allowed: bool, buffered: bytes = b"",
                   served: int = 1, slot: int = -1) -> tuple[bytes, int]:
    """The hand-over message and the memfd carrying the body (-1 when it is inline)."""
    body = request.body
    body_fd = -1
    if len(body) > INLINE_BODY:
        body_fd = os.memfd_create("x15g-body", os.MFD_CLOEXEC)
        view = memoryview(body)
        while view:
            view = view[os.write(body_fd, view):]
        body = b""
    fields = (request_id, request.method, request.target, request.path, request.query, request.version,
              request.headers, request.keep_alive, request.content_length, request.chunked, body,
              request.peer, keep_allowed, body_fd >= 0, buffered, served, slot, request.scheme,
              request.forwarded)
    return marshal.dumps(fields), body_fd


@dataclass(slots=True)
class HandOver:
    """A hand-over as the handler reads it."""

    request_id: int
    request: Request
    keep_allowed: bool
    buffered: bytes  # what the worker read after the request: the next request's start
    served: int  # requests the connection answered, this one included
    slot: int  # the board slot for this connection


def decode_request(data: bytes, body_fd: int) -> HandOver:
    """The hand-over in `data`; reads and closes `body_fd` if given."""
    (request_id, method, target, path, query, version, headers, keep_alive, content_length, chunked,
     body, peer, keep_allowed, in_memfd, buffered, served, slot, scheme, forwarded) = marshal.loads(data)
    if in_memfd:
        try:
            size = os.fstat(body_fd).st_size
            body = os.pread(body_fd, size, 0)
        finally:
            os.close(body_fd)
    request = Request(method, target, path, query, version, headers, keep_alive, content_length, chunked,
                      body=body, peer=peer, scheme=scheme, forwarded=forwarded)
    return HandOver(request_id, request, keep_allowed, buffered, served, slot)


def setup_message(settings: Any, kind: str, routes: Any = None) -> bytes:
    """The first message to a handler: the settings, the application `kind` ("wsgi" or
    "specweb"), the sandbox plan and `routes` (responder.route_table: which requests that
    follow on a connection are its own to answer; None: none, every connection goes back)."""
    return marshal.dumps({
        "kind": kind,
        "announce": True,  # log what the sandbox enforces
        "settings": settings_values(settings),
        "plan": dataclasses.asdict(handler_plan(settings, kind)),
        "routes": routes,
    })


def settings_values(settings: Any) -> dict[str, Any]:
    """`settings` as marshal carries it (to a handler or a launcher); `settings_from` undoes it."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def settings_from(values: dict[str, Any]) -> Any:
    """The Settings that `settings_values` gave (marshal turns tuples into lists)."""
    from x15g.config import Settings

    return Settings(**{name: tuple(v) if type(v) is list else v for name, v in values.items()})


def handler_plan(settings: Any, kind: str, import_path: Sequence[str] | None = None) -> sandbox.Plan:
    """What a handler may read and write: the interpreter and its libraries, the application's
    code (the import path: `import_path`, else this process's), the document root; for the
    SPECweb99-like module its state directory."""
    import x15g

    path = sys.path if import_path is None else import_path
    read_only = list(sandbox.SYSTEM_LIBRARIES) + [p or os.getcwd() for p in path]
    read_only += [os.path.dirname(os.path.abspath(x15g.__file__)), settings.root]
    read_write = [settings.specweb_state] if kind == "specweb" else []
    return sandbox.Plan(user=settings.isolate_user, group=settings.isolate_group, read_only=read_only,
                        read_write=read_write, memory=settings.isolate_memory,
                        max_fds=settings.max_connections + 64, require=settings.isolate_require_sandbox)


# What every handler gets of the server's environment: what finds the interpreter's code and
# sets the locale and the time zone. The rest only by --isolate-env (it often holds secrets).
BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHOME")


def handler_environment(environ: Any, passed: Sequence[str]) -> dict[str, str]:
    """The environment a handler process starts with: BASE_ENVIRONMENT and the `passed` names
    (`*`: everything) of `environ`, and what the handler's interpreter should do."""
    names = environ.keys() if "*" in passed else (*BASE_ENVIRONMENT, *passed)
    env = {name: environ[name] for name in names if name in environ}
    env.update(PYTHONDONTWRITEBYTECODE="1", MALLOC_ARENA_MAX="2")
    return env


def handler_stderr(settings: Any) -> Any:
    """Where a handler's stderr goes: the error log file, or the server's own stderr (None)."""
    return None if settings.error_log in ("-", "") else open(settings.error_log, "ab")


def decode_setup(data: bytes) -> dict[str, Any]:
    return marshal.loads(data)


def send(sock: Any, data: bytes, fds: Sequence[int] = ()) -> None:
    """One message, with `fds` attached (they stay open here: the caller closes its copies)."""
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, _SCM, array.array("i", fds))])
    else:
        sock.send(data)


class Receiver:
    """Receives messages into one buffer allocated once: recvmsg(MAX_MESSAGE) would allocate
    (and the allocator mmap and munmap) 192 KiB per message."""

    __slots__ = ("buffer", "view")

    def __init__(self) -> None:
        self.buffer = bytearray(MAX_MESSAGE)
        self.view = memoryview(self.buffer)

    def receive(self, sock: Any) -> tuple[bytes, list[int]]:
        """One message and the fds attached to it; (b"", []) when the peer is gone."""
        size, ancillary, flags, _ = sock.recvmsg_into([self.buffer], _FD_SPACE)
        return _checked(bytes(self.view[:size]), ancillary, flags)


def receive(sock: Any) -> tuple[bytes, list[int]]:
    """One message and the fds attached to it; (b"", []) when the peer is gone."""
    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, _FD_SPACE)
    return _checked(data, ancillary, flags)


def _checked(data: bytes, ancillary: list, flags: int) -> tuple[bytes, list[int]]:
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SCM:
            got = array.array("i")
            got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
            fds += got.tolist()
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise ValueError("truncated message")
    return data, fds
