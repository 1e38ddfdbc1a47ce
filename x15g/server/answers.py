"""Ready answers: whole responses on the wire, keyed by what in the request head selects them.

X15 and TUX answered a repeated request for a cached file by sending bytes prepared before it
arrived. Here that is the last step of the caches: the open-file cache already holds a prebuilt
`Response` per file, and clients ask for the same files again and again: a keep-alive client (a
poller, a load generator) with the same head bytes, and browsers and proxies with heads that
differ per visitor (user agent, cookies, Referer, a query) but select the same answer. An
answer is kept under two keys:

- the exact head bytes, for heads up to MAX_HEAD: one lookup, no parse; the answer carries the
  access-log fields of that head;
- (method, path, HTTP version, `Request.selecting`): what a `fresh` response may depend on
  (http/messages.py SELECTING_FIELDS). The connection reads it from the parser's cache of field
  blocks (http/parser.py `known_head`) without building a Request.

Either way the connection sends the stored bytes (head, Date, Connection and body in one buffer)
without routing or building anything (see connection.Connection._made).

Only responses whose producer marked them with `Response.fresh` are stored (the static
responder's plain 200 and HEAD answers, its 304s, and single-range 206s of bodies held in memory;
for a precompressed sidecar the original file's entry is the one checked, as it watches both):
they depend on nothing but those parts of the request and the entry, which stays unchanged while
`fresh.fresh_until` is ahead and `fresh.retired` is false. A large file's answer is the head plus
a sendfile of the entry's open fd, used only while the entry's pages are known to be in memory
(`fresh.resident_until`), so the hub never waits on disk. The wire bytes are the response's own
(http/wire.py: assembled once per Date second and Connection tail, shared by every head that
gets that response). Bounded by key count and by the bytes the answers account for (oldest
dropped first); exact heads are only stored when short, so a client cannot fill memory with huge
heads, and every key only from its second answer, so keys that never repeat do not churn the
store.
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
    """The per-worker map from request heads to `ReadyAnswer` (see the module doc).

    `closes_always`: the settings close every connection after one answer (keep-alive off), so
    a closing answer follows from the settings and may be stored even for a keep-alive request."""

    __slots__ = ("_map", "_admission", "max_entries", "max_bytes", "bytes", "closes_always")

    def __init__(self, max_entries: int = 4096, max_bytes: int = 32 << 20, closes_always: bool = False) -> None:
        # Oldest first. An OrderedDict drops its oldest in O(1); a plain dict used as a queue scans
        # over the holes its deletions left at the front (7% of a worker's time under churn).
        self._map: OrderedDict[Any, ReadyAnswer] = OrderedDict()
        # A key is stored on its second answer, so keys that never repeat cannot push out the
        # answers that are used.
        self._admission = SecondSighting(max_entries)
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # each answer holds its own copy of head and small body
        self.bytes = 0
        self.closes_always = closes_always

    def __len__(self) -> int:
        return len(self._map)

    def lookup(self, key: Any, now: float) -> ReadyAnswer | None:
        """The stored answer under `key` if its file entry is still fresh: a head's exact bytes
        (only heads up to MAX_HEAD are ever stored, so callers need not hash longer ones), or
        (method, path, version, Request.selecting) for any head that selects the same answer."""
        answer = self._map.get(key)
        if answer is None:
            return None
        fresh = answer.fresh
        if now < fresh.fresh_until and not fresh.retired and (answer.file is None or now < fresh.resident_until):
            fresh.used = True  # the cache keeps it fresh ahead of time (FileCache.refresh)
            return answer
        self._drop(key)
        self._admission.note(key)  # it repeats: the next full-path answer stores a fresh one at once
        return None

    def remember(self, head: bytes, request: Request, response: Response, tail: bytes, keep: bool,
                 now: float) -> ReadyAnswer | None:
        """Store the answer to `request` (whose head bytes are `head`) when it may answer again,
        under two keys: the exact head bytes (when short and not forwarded: that answer carries
        the request's access-log fields), and the request's method, path, version and
        `selecting` values, which every head that means the same shares (a counter in the
        query, another visitor's user agent or cookies). Returns the answer stored under the
        exact bytes, if any. Cheap when it may not.

        The rule: the response is marked reusable (`fresh`) and still fresh, its body is bytes or
        one file range, the request has no body, and the Connection part follows from the request
        alone (or from settings that close every answer), not from a drain or the per-connection
        request limit."""
        fresh = response.fresh
        if fresh is None or response.close or request.chunked or request.content_length:
            return None
        if not keep and request.keep_alive and not self.closes_always:
            return None
        if not now < fresh.fresh_until or fresh.retired:
            return None
        if type(response.body) is not bytes and type(response.body) is not FileRange:
            return None
        if request.selecting is not None:
            self._store((request.method, request.path, request.version, request.selecting), response, fresh,
                        request, tail, keep)
        if len(head) > MAX_HEAD or request.forwarded:
            return None
        return self._store(head, response, fresh, request, tail, keep)

    def _store(self, key: Any, response: Response, fresh: Freshness, request: Request, tail: bytes,
               keep: bool) -> ReadyAnswer | None:
        answers = self._map
        stored = answers.get(key)
        if stored is not None:
            if stored.response is response and stored.keep is keep and stored.tail is tail:
                return stored  # a head whose block the parser did not know yet, already answered
            self._drop(key)
        elif not self._admission.admit(key):
            return None
        answer = ReadyAnswer(response, fresh, request, tail, keep)
        if answer.size > self.max_bytes:
            return None
        if response.wires is None:
            response.wires = {}  # it answers again: assemble its wire bytes once a second
        while answers and (len(answers) >= self.max_entries or self.bytes + answer.size > self.max_bytes):
            self.bytes -= answers.popitem(last=False)[1].size  # the oldest first
        answers[key] = answer
        self.bytes += answer.size
        return answer

    def _drop(self, key: Any) -> None:
        self.bytes -= self._map.pop(key).size

    def clear(self) -> None:
        self._map.clear()
        self._admission.clear()
        self.bytes = 0
