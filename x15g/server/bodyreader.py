"""A request body read as the application asks for it (`wsgi.input`), straight from the socket.

The connection gives it to requests whose responder reads bodies lazily (the router's
`reads_body_lazily`): nothing of the body is read before the app asks, so an upload streams
through in pieces of the size the app reads, and a responder that needs no body (a 405 to a
POST on a static file) answers before the body arrived. `100 Continue` goes out on the first
read, and only while no answer head has (RFC 9110 §10.1.1). After the answer the connection
discards what the app left unread, up to `DISCARD_LIMIT` bytes (nginx's lingering close), or
closes. Errors of the body (bad chunk 400, over --max-body-size 413, too slow 408, the client
gone) raise HTTPError to the reader and mark the body `broken`: the connection then closes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from x15g.errors import HTTPError

DISCARD_LIMIT = 1024 * 1024  # unread body bytes the connection still reads and drops to keep alive
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BodyReader:
    """File-like reader of one body: `read`, `readline`, `readlines`, iteration by lines."""

    __slots__ = ("decoder", "recv", "send", "buffer", "leftover", "continue_pending", "answered", "broken")

    def __init__(self, decoder: Any, buffered: bytes, recv: Callable[[], bytes], send: Callable[[bytes], None],
                 expect_continue: bool) -> None:
        self.decoder = decoder  # http/body.py's ContentLengthBody or ChunkedBody
        # The connection's: recv() gives the next bytes under the body timeout (b"" at EOF) and
        # raises HTTPError (408, or 400 for a client gone); send(data) writes the 100 Continue.
        self.recv = recv
        self.send = send
        self.buffer = b""  # decoded body bytes not yet returned
        self.leftover = b""  # bytes after the body's end (a pipelined next request)
        self.continue_pending = expect_continue
        self.answered = False  # the connection sets it when the answer head is about to go out
        self.broken = False
        if buffered:
            self._feed(buffered)

    @property
    def done(self) -> bool:
        """The whole body was read from the socket (not necessarily by the app)."""
        return self.decoder.done

    def _feed(self, data: bytes) -> None:
        try:
            used = self.decoder.feed(data)
        except HTTPError:
            self.broken = True
            raise
        if self.decoder.done:
            self.leftover = data[used:]
        taken = self.decoder.take()
        self.buffer = self.buffer + taken if self.buffer else taken

    def _more(self) -> bool:
        """Read and decode the next bytes of the body into `buffer`; False at its end."""
        if self.decoder.done:
            return False
        if self.broken:
            raise HTTPError(400, "request body unusable after an earlier error", close=True)
        if self.continue_pending:
            self.continue_pending = False
            if not self.answered:
                self.send(_CONTINUE)
        try:
            data = self.recv()
        except HTTPError:
            self.broken = True
            raise
        if not data:
            self.broken = True
            raise HTTPError(400, "request body ended early", close=True)
        self._feed(data)
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (fewer only at the end of the body); all that is left without one."""
        if size is None or size < 0:
            while self._more():
                pass
            data, self.buffer = self.buffer, b""
            return data
        while len(self.buffer) < size and self._more():
            pass
        data = self.buffer[:size]
        self.buffer = self.buffer[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """One line with its b"\\n" (or up to `size` bytes, or the rest at the end)."""
        limit = size if size is not None and size >= 0 else -1
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if 0 <= limit <= len(self.buffer):
                end = limit
                break
            start = len(self.buffer)
            if not self._more():
                end = len(self.buffer)
                break
        if 0 <= limit < end:
            end = limit
        data = self.buffer[:end]
        self.buffer = self.buffer[end:]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def discard(self, limit: int = DISCARD_LIMIT) -> bool:
        """After the answer: read and drop the rest of the body, at most `limit` more bytes;
        True when the body ended (the connection may go on), False to close."""
        self.buffer = b""
        self.continue_pending = False  # an answer went out: no 100 any more
        dropped = 0
        try:
            while not self.decoder.done:
                if self.broken or dropped > limit:
                    return False
                self._more()
                dropped += len(self.buffer)
                self.buffer = b""
        except HTTPError:
            return False
        return True

    def unread_within(self, limit: int = DISCARD_LIMIT) -> bool:
        """Before the answer: whether what is left of the body may be discarded to keep the
        connection (not broken; for a Content-Length body, at most `limit` bytes left)."""
        if self.broken:
            return False
        remaining = getattr(self.decoder, "remaining", 0)
        return remaining <= limit
