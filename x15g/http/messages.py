"""The request and response records every layer agrees on.

A `Request` is what the parser produces from the head (the connection fills `body` and `peer`).
A `Response` is what a responder returns: a ready status line and header block (without `Date`
and `Connection`, which the connection adds per request), and a body of one of these kinds, all
sent and accounted by the connection's one send pipeline (architecture.md, principle 2):

- bytes (sent with the head in one `send`);
- a `FileRange` the connection sends with `sendfile`, or a list of bytes and FileRanges
  (multipart/byteranges);
- a `StreamedBody`: chunks produced while sending (WSGI streaming);
- a `TakeOver`: the socket is handed to it for this one request; it answers by itself and
  returns a `TakeOverOutcome` the connection accounts and continues from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol, Union


class BodyStream(Protocol):
    """A request body read on demand, file-like (what WSGI's `wsgi.input` needs)."""

    def read(self, size: int | None = -1) -> bytes: ...

    def readline(self, size: int | None = -1) -> bytes: ...

    def readlines(self, hint: int = -1) -> list[bytes]: ...

    def __iter__(self) -> Iterator[bytes]: ...


@dataclass(slots=True)
class Request:
    """One parsed request head.

    `path` and `query` are the raw bytes of the request-target (no percent-decoding), `version` is
    10 or 11, `headers` maps lower-case names to values (repeated fields joined with ", ", Cookie
    with "; ", RFC 9110 §5.3). `keep_alive` already folds in the version and `Connection` tokens.
    """

    method: str
    target: bytes
    path: bytes
    query: bytes
    version: int
    headers: dict[bytes, bytes]
    keep_alive: bool
    content_length: int | None = None
    chunked: bool = False
    expect_continue: bool = False
    body: bytes = b""
    peer: str = ""
    # Set by http/forwarded.py behind a trusted proxy: the scheme the client used, and whether the
    # head carried forwarding headers at all (its answer then depends on who sent it).
    scheme: str = "http"
    forwarded: bool = False
    request_id: str = ""  # X-Request-ID of an application request (app/wsgi.py), for the access log
    # The body, read as the responder asks (server/bodyreader.py) when its route reads bodies
    # lazily (`streams_body`); `body` then stays empty.
    body_reader: BodyStream | None = None
    # An application call its responder's respond_now began and respond finishes (app/wsgi.py).
    app_call: Any = None
    # What a `fresh` response may depend on beside the method, path and version (SELECTING_FIELDS),
    # set by the parser; None for a request with a body (never answered by a stored answer).
    selecting: tuple[Any, ...] | None = field(default=None, compare=False)

    def header(self, name: bytes) -> bytes | None:
        """The value of header `name` (lower-case bytes), or None."""
        return self.headers.get(name)

    @property
    def has_body(self) -> bool:
        """True when the framing announces body bytes to read (RFC 9112 §6.3)."""
        return self.chunked or bool(self.content_length)


@dataclass(frozen=True, slots=True)
class FileRange:
    """A part of an open file to send with `os.sendfile`: the connection never owns `fd`."""

    fd: int
    offset: int
    count: int


BodyPart = Union[bytes, FileRange]


# A response marked `fresh` depends on its request only through the method, the path, the HTTP
# version, keep-alive, and the values of these fields (the static responder's content coding,
# preconditions and Range): never on the query, the user agent, cookies, Referer, Accept-Language
# or the client. So the ready answers (server/answers.py) give it to any request that agrees on
# them, whatever else its head says (`Request.selecting`; RFC 9111 §4.1 calls such fields
# "selecting").
SELECTING_FIELDS = (b"accept-encoding", b"range", b"if-range", b"if-match", b"if-none-match",
                    b"if-modified-since", b"if-unmodified-since")


class Freshness(Protocol):
    """How long a response stays true for the requests that select it (SELECTING_FIELDS): the
    cache entry it was built from (x15g/static/filecache.py's entries). The ready answers
    (server/answers.py) reuse a response only while `fresh_until` (monotonic) is ahead, the entry
    is not `retired`, and, for a body sent by sendfile, while its pages are known resident
    (`resident_until`). A use sets `used`."""

    @property
    def fresh_until(self) -> float: ...

    @property
    def retired(self) -> bool: ...

    @property
    def resident_until(self) -> float: ...

    # Set by each use (a ready answer too), so the cache revalidates it ahead of time.
    used: bool


@dataclass(slots=True)
class StreamedBody:
    """A body produced while it is sent: `chunks` yields bytes; its `close()`, if it has one, is
    always called once the answer ends (sent, cut, or the client gone).

    `length` is the Content-Length the head already carries; the connection then sends exactly
    that many bytes (more: cut, fewer: the connection closes so the client sees the truncation).
    With `length` None the head carries no framing field: the connection adds
    `Transfer-Encoding: chunked` for HTTP/1.1 and closes after the body for HTTP/1.0. A client
    that reads slowly blocks the producer (the send timeout applies per stalled write)."""

    chunks: Iterable[bytes]
    length: int | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 0.77 us against 0.15, once per request
class Answered:
    """The access-log record of one more request a take-over answered on the connection after
    its own (an isolated handler keeping a keep-alive connection).
    `started` and `ended` are time.monotonic() values (the clock every process shares).
    `request_id` is its X-Request-ID, set on `request` as it is accounted: answers to the same
    head bytes may share one parsed Request."""

    request: Request
    status: int
    sent: int
    started: float
    ended: float
    request_id: str = ""


class Tallied(Protocol):
    """What a take-over observed of the requests it answered after its own (an isolated
    handler's observability.metrics.Tally), for the connection to add to its metrics at once:
    duration buckets, their sum in microseconds, counts by (method, status), body bytes."""

    buckets: list[int]
    sum_us: int
    codes: dict[tuple[str, int], int]
    requests: int
    bytes_sent: int


@dataclass(frozen=True, slots=True)
class TakeOverOutcome:
    """What a take-over did: the status it answered, the body bytes it sent, whether the
    connection may serve another request, and the bytes it read past its request (pipelining).
    `tally` counts the requests it answered after its own, `answered` are their access-log
    records in order (empty when there is no access log); `request_id` the X-Request-ID its
    application gave its own request (for the access log)."""

    status: int
    sent: int
    keep_alive: bool
    leftover: bytes = b""
    answered: tuple[Answered, ...] = ()
    request_id: str = ""
    tally: Tallied | None = None


class TakeOver(Protocol):
    """A body that answers on the socket itself (e.g. a handler process given the fd).

    `take_over` runs in the connection's greenlet (it may block cooperatively). `fd` is the
    connection's non-blocking socket, `buffered` the bytes already read after this request (its
    body, if it had one, is in `request.body`), `keep_alive` whether the connection would stay
    open after this answer (when False the answer must say `Connection: close`), `served` how
    many requests the connection has answered counting this one (a take-over that answers more
    applies the same per-connection limit). The response's `head` is unused; the connection never
    writes to or reads from the socket while it runs. A take-over that answers more requests may
    call `progress` (from the hub) with what it did so far (`leftover` unused), to have them
    accounted before it gives the connection back; its outcome then holds only the rest."""

    def take_over(self, fd: int, buffered: bytes, keep_alive: bool, served: int,
                  progress: Callable[[TakeOverOutcome], None]) -> TakeOverOutcome: ...


@dataclass(slots=True)
class Response:
    """What a responder decided: `head` is the status line and header lines (each ending CRLF)
    except Date and Connection; `length` is the Content-Length already written into `head`
    (the bytes the body will carry, even for HEAD where nothing is sent).

    `body` is bytes, a FileRange, a list of parts sent in order, a `StreamedBody` or a `TakeOver`
    (see the module doc). `close` forces the connection
    to close after this response. `release` is called once the body is sent or abandoned (e.g. to
    drop a reference to a cached open file). `fresh`, when set, says the response answers any
    request with the same head bytes while `fresh.fresh_until` (monotonic) is ahead and
    `fresh.retired` is false (the open-file cache's entries; see server/answers.py). `wires`,
    set to {} by a producer whose response answers many requests, is where the connection keeps
    its bytes on the wire per Connection tail, made once a second (http/wire.py); the
    response itself is never changed.
    """

    status: int
    head: bytes
    body: BodyPart | list[BodyPart] | StreamedBody | TakeOver = b""
    length: int = 0
    close: bool = False
    send_body: bool = True
    release: Callable[[], None] | None = None
    fresh: Freshness | None = None
    wires: dict[bytes, Any] | None = None

    def sends_body(self, method: str) -> bool:
        """Whether a body goes on the wire for a request of `method` (never for HEAD)."""
        return self.send_body and method != "HEAD"
