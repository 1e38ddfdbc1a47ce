"""Request body decoders (RFC 9112 §6, §7): Content-Length and chunked, pure and incremental.

Both have the same interface: `feed(data)` consumes what belongs to this body and returns how
many bytes it took (the rest is the next pipelined request), `done` says the body is complete,
`take()` returns and clears the decoded bytes so far. Errors raise ProtocolError (400) or
HTTPError(413, close=True) when the body exceeds `max_body_size`.
"""

from __future__ import annotations

import re

from x15g.errors import HTTPError, ProtocolError
from x15g.http.parser import BAD_HEAD_BYTES, TCHAR, Limits

CRLF = b"\r\n"
MAX_SIZE_DIGITS = 16  # 16 hex digits = 64 bits; more is an overflow attempt
MAX_EXTENSION = 4096  # bytes of chunk extensions accepted per chunk line
# Framing bytes (size lines, extensions, CRLFs) beyond 16 per chunk plus twice its data may add up
# to this much, no more: many tiny chunks with long extensions would otherwise let a client make
# the server parse unbounded non-data (Go net/http's rule after CVE-2023-39326; llhttp CVE-2024-22019).
MAX_OVERHEAD = 16 * 1024
_HEX = b"0123456789abcdefABCDEF"

# chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string
# (RFC 9112 §7.1.1). Chunk lines with extensions are rare, so a regex here costs nothing.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_EXTENSIONS = re.compile(
    rb"(?:;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?[ \t]*)*"
)

# Trailer fields that would change framing, routing, authentication or the request's meaning if a
# later stage merged them (RFC 9110 §6.5.1). x15g never merges trailers; refusing these anyway
# stops a trailer from smuggling them past a proxy in front of us.
FORBIDDEN_TRAILERS = frozenset({
    b"content-length", b"transfer-encoding", b"host", b"trailer", b"te", b"connection",
    b"keep-alive", b"upgrade", b"expect", b"authorization", b"proxy-authorization", b"cookie",
    b"range", b"max-forwards", b"if-match", b"if-none-match", b"if-modified-since",
    b"if-unmodified-since", b"if-range",
})


class ContentLengthBody:
    """A body of exactly `length` bytes (RFC 9112 §6.2)."""

    __slots__ = ("remaining", "_parts", "trailers")

    def __init__(self, length: int) -> None:
        self.remaining = length
        self._parts: list[bytes] = []
        self.trailers: dict[bytes, bytes] = {}

    @property
    def done(self) -> bool:
        """True once all `length` bytes were fed."""
        return self.remaining == 0

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Take up to `remaining` bytes from `data`; return how many were taken."""
        n = min(self.remaining, len(data))
        if n:
            self._parts.append(bytes(data[:n]))
            self.remaining -= n
        return n

    def take(self) -> bytes:
        """Return and clear the body bytes decoded so far."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class ChunkedBody:
    """The chunked transfer coding (RFC 9112 §7.1), with trailer fields (§7.1.2)."""

    __slots__ = ("limits", "_state", "_line", "_remaining", "_total", "_parts", "trailers",
                 "_trailer_bytes", "_overhead")

    _SIZE, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._state = self._SIZE
        self._line = b""  # a chunk-size or trailer line not yet terminated by CRLF
        self._remaining = 0  # data bytes left in the current chunk, or CRLF bytes after it
        self._total = 0
        self._parts: list[bytes] = []
        self.trailers: dict[bytes, bytes] = {}
        self._trailer_bytes = 0
        self._overhead = 0

    @property
    def done(self) -> bool:
        """True once the last chunk and the trailer section (with its final CRLF) were read."""
        return self._state == self._DONE

    def take(self) -> bytes:
        """Return and clear the body bytes decoded so far."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Decode from `data`; return the bytes consumed (stops at the end of the body)."""
        if not isinstance(data, bytes):
            data = bytes(data)
        pos, size = 0, len(data)
        while pos < size and self._state != self._DONE:
            state = self._state
            if state == self._DATA:
                n = min(self._remaining, size - pos)
                self._parts.append(data[pos:pos + n])
                pos += n
                self._remaining -= n
                if not self._remaining:
                    self._state, self._remaining = self._DATA_CRLF, 2
            elif state == self._DATA_CRLF:
                # Exactly CRLF after the chunk data (RFC 9112 §7.1); checked byte by byte so a
                # CR and its LF may arrive in different reads.
                expected = 0x0D if self._remaining == 2 else 0x0A
                if data[pos] != expected:
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                pos += 1
                self._remaining -= 1
                if not self._remaining:
                    self._state = self._SIZE
            else:
                line, pos = self._read_line(data, pos)
                if line is None:
                    break
                if state == self._SIZE:
                    self._on_size_line(line)
                else:
                    self._on_trailer_line(line)
        return pos

    def _read_line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """Collect a CRLF-terminated line across reads; (None, len(data)) when incomplete."""
        if self._line.endswith(b"\r") and data[pos:pos + 1] == b"\n":
            line, self._line = self._line[:-1], b""
            return self._checked(line), pos + 1
        end = data.find(CRLF, pos)
        if end < 0:
            self._line += data[pos:]
            limit = (MAX_SIZE_DIGITS + MAX_EXTENSION + 1 if self._state == self._SIZE
                     else self.limits.max_field_size)
            if len(self._line) > limit:
                raise ProtocolError(400, "chunk line too long")
            return None, len(data)
        line, self._line = self._line + data[pos:end], b""
        return self._checked(line), end + 2

    @staticmethod
    def _checked(line: bytes) -> bytes:
        if b"\r" in line or b"\n" in line:  # bare CR/LF never ends a chunk line (strict)
            raise ProtocolError(400, "bare CR or LF in a chunk line")
        return line

    def _on_size_line(self, line: bytes) -> None:
        """chunk = chunk-size [ chunk-ext ] CRLF; size is 1*HEXDIG, nothing else (no sign, no 0x,
        no '_', no spaces: Python's int() would accept those, RFC 9112 §7.1 does not)."""
        size_end = line.find(b";")
        digits = line if size_end < 0 else line[:size_end]
        if not digits or len(digits) > MAX_SIZE_DIGITS or digits.translate(None, _HEX):
            raise ProtocolError(400, "invalid chunk size")
        if size_end >= 0:
            ext = line[size_end:]
            if len(ext) > MAX_EXTENSION or not _EXTENSIONS.fullmatch(ext):
                raise ProtocolError(400, "invalid chunk extension")
        size = int(digits, 16)
        self._overhead = max(0, self._overhead + len(line) + 4 - 16 - 2 * size)
        if self._overhead > MAX_OVERHEAD:
            raise ProtocolError(400, "chunked body with too much non-data (chunk extensions)")
        if size == 0:
            self._state = self._TRAILER
            return
        self._total += size
        if self._total > self.limits.max_body_size:
            raise HTTPError(413, "request body too large", close=True)
        self._state, self._remaining = self._DATA, size

    def _on_trailer_line(self, line: bytes) -> None:
        """trailer-section = *( field-line CRLF ), then CRLF (RFC 9112 §7.1.2)."""
        if not line:
            self._state = self._DONE
            return
        self._trailer_bytes += len(line) + 2
        if (len(self.trailers) >= self.limits.max_header_count
                or self._trailer_bytes > self.limits.max_header_size):
            raise ProtocolError(431, "trailer section too large")
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, TCHAR):
            raise ProtocolError(400, "invalid trailer field")
        if len(value.translate(None, BAD_HEAD_BYTES)) != len(value):
            raise ProtocolError(400, "control character in a trailer field")
        lname = name.lower()
        if lname in FORBIDDEN_TRAILERS:
            raise ProtocolError(400, f"{lname.decode()} not allowed in trailers")
        value = value.strip(b" \t")
        old = self.trailers.get(lname)
        self.trailers[lname] = value if old is None else old + b", " + value
