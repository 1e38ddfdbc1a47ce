"""The messages between a worker and its handler processes, over a SOCK_SEQPACKET socketpair.

One datagram per message, so no framing. Worker to handler (trusted direction, `marshal`):
- the setup, once: the settings, what to serve, the sandbox plan;
- a hand-over: request id, the parsed request, whether keep-alive is allowed, with the client's
  socket attached by SCM_RIGHTS (and a memfd holding the body when it is large).
The sockets are `socket.socket` or the C `_socket.socket` (the worker reads them from a hub
watcher, without gevent's wrapper): both have sendmsg and recvmsg.
Handler to worker (untrusted direction: a fixed struct the worker unpacks, never unpickles):
- a report: request id, status, body bytes sent, flags (keep the connection / answer begun).
  Id 0 is the handler saying it is ready.
"""

from __future__ import annotations

import array
import dataclasses
import marshal
import os
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from x15g.http.messages import Request
from x15g.isolate import sandbox

# A body up to this size travels inside the message; larger ones in a memfd (a datagram must
# fit the socket buffer).
INLINE_BODY = 64 * 1024
MAX_MESSAGE = INLINE_BODY + 128 * 1024  # head limits are far below this (max_header_size)
_SCM = socket.SCM_RIGHTS
_FD_SPACE = socket.CMSG_SPACE(2 * array.array("i").itemsize)

KEEP = 1  # the handler's answer said keep-alive: the worker reads the next request
BEGUN = 2  # some bytes of the answer reached the socket (a later failure must close)
_REPORT = struct.Struct("<IHQB")
REPORT_SIZE = _REPORT.size


@dataclass(slots=True)
class Report:
    """What a handler says about one request it answered."""

    request_id: int
    status: int
    sent: int
    keep: bool
    begun: bool


def encode_report(report: Report) -> bytes:
    return _REPORT.pack(report.request_id, report.status, report.sent,
                        (KEEP if report.keep else 0) | (BEGUN if report.begun else 0))


def decode_report(data: bytes) -> Report:
    """Raises ValueError on anything but a well-formed report (the handler is not trusted)."""
    if len(data) != REPORT_SIZE:
        raise ValueError(f"handler report of {len(data)} bytes")
    request_id, status, sent, flags = _REPORT.unpack(data)
    return Report(request_id, status, sent, bool(flags & KEEP), bool(flags & BEGUN))


def encode_request(request_id: int, request: Request, keep_allowed: bool) -> tuple[bytes, int]:
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
              request.peer, keep_allowed, body_fd >= 0)
    return marshal.dumps(fields), body_fd


def decode_request(data: bytes, body_fd: int) -> tuple[int, Request, bool]:
    """(request id, the request, keep-alive allowed); reads and closes `body_fd` if given."""
    (request_id, method, target, path, query, version, headers, keep_alive, content_length, chunked,
     body, peer, keep_allowed, in_memfd) = marshal.loads(data)
    if in_memfd:
        try:
            size = os.fstat(body_fd).st_size
            body = os.pread(body_fd, size, 0)
        finally:
            os.close(body_fd)
    request = Request(method, target, path, query, version, headers, keep_alive, content_length, chunked,
                      body=body, peer=peer)
    return request_id, request, keep_allowed


def setup_message(settings: Any, kind: str) -> bytes:
    """The first message to a handler: the settings, the application `kind` ("wsgi" or
    "specweb") and the sandbox plan."""
    return marshal.dumps({
        "kind": kind,
        "announce": True,  # log what the sandbox enforces
        "settings": {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)},
        "plan": dataclasses.asdict(handler_plan(settings, kind)),
    })


def handler_plan(settings: Any, kind: str) -> sandbox.Plan:
    """What a handler may read and write: the interpreter and its libraries, the application's
    code (the import path), the document root; for the SPECweb99-like module its state directory."""
    import x15g

    read_only = list(sandbox.SYSTEM_LIBRARIES) + [p or os.getcwd() for p in sys.path]
    read_only += [os.path.dirname(os.path.abspath(x15g.__file__)), settings.root]
    read_write = [settings.specweb_state] if kind == "specweb" else []
    return sandbox.Plan(user=settings.isolate_user, group=settings.isolate_group, read_only=read_only,
                        read_write=read_write, memory=settings.isolate_memory,
                        max_fds=settings.max_connections + 64, require=settings.isolate_require_sandbox)


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
