"""Ready answers: whole responses on the wire, keyed by the exact bytes of the request head.

X15 and TUX answered a repeated request for a cached file by sending bytes prepared before it
arrived. Here that is the last step of the caches: the open-file cache already holds a prebuilt
`Response` per file, and a keep-alive client (a browser, a load generator, a proxy) sends the same
head bytes for the same file again and again. When the head read from a socket is exactly one we
answered before, and the file entry behind the answer is still inside its revalidation window,
the connection sends the stored bytes (head, Date, Connection and body in one buffer) without
parsing, routing or building anything (see connection.Connection._on_readable).

Only responses whose producer marked them with `Response.fresh` are stored (the static
responder's plain 200 and HEAD answers, its 304s, and single-range 206s of bodies held in memory;
for a precompressed sidecar the original file's entry is the one checked, as it watches both):
they depend on nothing but the request head and the entry, which stays unchanged while
`fresh.fresh_until` is ahead and `fresh.retired` is false. A large file's answer is the head plus
a sendfile of the entry's open fd, used only while the entry's pages are known to be in memory
(`fresh.resident_until`), so the hub never waits on disk. The wire bytes are the response's own
(http/wire.py: assembled once per Date second and Connection tail, shared by every head that
gets that response). Bounded by entry count and by the bytes the answers account for (oldest
dropped first); a head is only stored when it is short, so a client cannot fill memory with huge
heads, and only from its second answer, so heads that never repeat do not churn the store.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from x15g.cache.admission import SecondSighting
from x15g.http.messages import FileRange, Freshness, Request, Response
from x15g.http.wire import INLINE_BODY, Wire, assemble

# Longer heads are not stored. Heads of this size come from simple clients and load generators,
# which repeat them byte for byte; a browser's or a proxy's (user agent, Accept-*, cookies,
# Referer: 400-800 bytes) differ per visitor, so storing them only churned: with browser-like
# heads from 5,000 visitors one worker answered 28k req/s and grew 61 MB with the store, 42k and
# 9 MB without it (immediate answers serve them at once anyway).
MAX_HEAD = 256
DATE_LINE = 37  # len(b"Date: Thu, 26 Nov 2026 12:30:46 GMT\r\n")


class ReadyAnswer:
    """One stored answer: the response and the Connection tail it was sent with."""

    __slots__ = ("response", "fresh", "request", "method", "tail", "keep", "sends", "sent", "file", "size",
                 "log_fields", "wants_keep", "date", "wire")

    def __init__(self, response: Response, fresh: Freshness, request: Request, tail: bytes, keep: bool) -> None:
        self.response = response
        self.fresh = fresh  # the response's `fresh`: how long this answer stays true
        self.wants_keep = request.keep_alive  # what the request's Connection part asked for
        # The request it answered, to log a failed send with the bytes that left; only kept
        # when there is an access log (`log_fields` set), as it holds the parsed header fields.
        self.request: Request | None = None
        self.method = request.method
        self.tail = tail  # the Connection part that ends the head (depends on the HTTP version)
        self.keep = keep  # what the connection decided for it (False: the tail says Connection: close)
        self.sends = response.sends_body(self.method)
        body = response.body if self.sends else b""
        # A large file's body goes by sendfile after the head.
        self.file = body if type(body) is FileRange else None
        self.sent = self.file.count if self.file is not None else len(body)  # type: ignore[arg-type]
        # Memory its wire bytes hold (http/wire.py), Date included.
        inline = self.sent if self.file is None and self.sent <= INLINE_BODY else 0
        self.size = len(response.head) + len(tail) + DATE_LINE + inline
        self.log_fields: Any = None  # the access log's prepared fields, when there is one
        self.date = b""  # the Date line `wire` was taken for
        self.wire: Wire = (b"", 0, (), None)

    def wire_for(self, date: bytes) -> Wire:
        """What to send for the Date line `date` (assembled once a second: the response's `wires`)."""
        if date is not self.date:
            self.wire = assemble(self.response, date, self.tail, self.sends)
            self.date = date
        return self.wire


class ReadyAnswers:
    """The per-worker map from request head bytes to `ReadyAnswer` (see the module doc).

    `closes_always`: the settings close every connection after one answer (keep-alive off), so
    a closing answer follows from the settings and may be stored even for a keep-alive request."""

    __slots__ = ("_map", "_admission", "max_entries", "max_bytes", "bytes", "closes_always")

    def __init__(self, max_entries: int = 4096, max_bytes: int = 32 << 20, closes_always: bool = False) -> None:
        # Oldest first. An OrderedDict drops its oldest in O(1); a plain dict used as a queue scans
        # over the holes its deletions left at the front (7% of a worker's time under churn).
        self._map: OrderedDict[bytes, ReadyAnswer] = OrderedDict()
        # A head is stored on its second answer, so heads that never repeat cannot push out the
        # answers that are used.
        self._admission = SecondSighting(max_entries)
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # each answer holds its own copy of head and small body
        self.bytes = 0
        self.closes_always = closes_always

    def __len__(self) -> int:
        return len(self._map)

    def lookup(self, head: bytes, now: float) -> ReadyAnswer | None:
        """The stored answer for these exact head bytes if its file entry is still fresh."""
        if len(head) > MAX_HEAD:
            return None  # never stored: not worth hashing (a browser's head is 400-800 bytes)
        answer = self._map.get(head)
        if answer is None:
            return None
        fresh = answer.fresh
        if now < fresh.fresh_until and not fresh.retired and (answer.file is None or now < fresh.resident_until):
            fresh.used = True  # the cache keeps it fresh ahead of time (FileCache.refresh)
            return answer
        self._drop(head)
        self._admission.note(head)  # it repeats: the next full-path answer stores a fresh one at once
        return None

    def remember(self, head: bytes, request: Request, response: Response, tail: bytes, keep: bool,
                 now: float) -> ReadyAnswer | None:
        """Store the answer to `request` (whose head bytes are `head`) when it may answer the same
        bytes again; returns the stored answer. Cheap when it may not.

        The rule: the response is marked reusable (`fresh`) and still fresh, its body is bytes or
        one file range, the head is short and is the whole request (no body), and the Connection
        part follows from the request alone (or from settings that close every answer), not from a
        drain or the per-connection request limit."""
        fresh = response.fresh
        if fresh is None or len(head) > MAX_HEAD or response.close:
            return None
        if request.chunked or request.content_length or request.forwarded:
            return None
        if not keep and request.keep_alive and not self.closes_always:
            return None
        if not now < fresh.fresh_until or fresh.retired:
            return None
        if type(response.body) is not bytes and type(response.body) is not FileRange:
            return None
        answers = self._map
        if head in answers:
            self._drop(head)
        elif not self._admission.admit(head):
            return None
        answer = ReadyAnswer(response, fresh, request, tail, keep)
        if answer.size > self.max_bytes:
            return None
        if response.wires is None:
            response.wires = {}  # it answers again: assemble its wire bytes once a second
        while answers and (len(answers) >= self.max_entries or self.bytes + answer.size > self.max_bytes):
            self.bytes -= answers.popitem(last=False)[1].size  # the oldest first
        answers[head] = answer
        self.bytes += answer.size
        return answer

    def _drop(self, head: bytes) -> None:
        self.bytes -= self._map.pop(head).size

    def clear(self) -> None:
        self._map.clear()
        self._admission.clear()
        self.bytes = 0
