"""Build status lines and header blocks (pure; the connection adds Date and Connection)."""

from __future__ import annotations

from http import HTTPStatus

from x15g import SERVER_SOFTWARE

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_SERVER_LINE = b"Server: " + SERVER_SOFTWARE.encode() + b"\r\n"


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <reason>\\r\\n` for any 3-digit status."""
    reason = _REASONS.get(status, "Unknown")
    return b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("ascii"))


def header_lines(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> bytes:
    """`Name: value\\r\\n` lines; values are latin-1 as RFC 9110 §5.5 allows, CR/LF refused."""
    out = []
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains CR or LF")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1")


def build_head(status: int, headers: list[tuple[str, str]] | tuple[tuple[str, str], ...], length: int | None) -> bytes:
    """Status line, `Server`, the given headers and `Content-Length` (when not None)."""
    head = status_line(status) + _SERVER_LINE + header_lines(headers)
    if length is not None:
        head += b"Content-Length: %d\r\n" % length
    return head


def simple_response_head(status: int, content_type: str, length: int, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """Head of a small generated answer (error pages, redirects, dynamic pages)."""
    return build_head(status, (("Content-Type", content_type),) + tuple(headers), length)


# The end of every head: the Connection part the connection decides per request.
KEEP_ALIVE_11 = b"\r\n"  # HTTP/1.1 keeps by default
KEEP_ALIVE_10 = b"Connection: keep-alive\r\n\r\n"
CLOSE = b"Connection: close\r\n\r\n"


def connection_tail(keep: bool, version: int) -> bytes:
    """The line(s) that end a head: nothing more for a kept HTTP/1.1 connection, else Connection."""
    if keep:
        return KEEP_ALIVE_11 if version == 11 else KEEP_ALIVE_10
    return CLOSE
