"""A whole request body read from its stream: small bodies in memory, larger ones spooled to an
unlinked temporary file, so a responder that needs the body complete before it can act (a CGI
child's stdin with its CONTENT_LENGTH, a form to parse) never holds a large upload in memory.

The stream is the connection's lazy body reader (server/bodyreader.py): it enforces
--max-body-size (413), the body timeout (408) and chunked decoding, so a chunked upload arrives
here already decoded and its length is known once spooled. `limit` refuses, with 413, bodies
longer than a responder accepts at all (the SPECweb99-like POST), before more is read.
"""

from __future__ import annotations

import tempfile
from typing import IO, Protocol

from x15g.errors import HTTPError

SPOOL_THRESHOLD = 1024 * 1024  # bodies up to this stay in memory; larger go to a temporary file
READ_SIZE = 65536


class ReadableBody(Protocol):
    """What spooling reads from (http/messages.py's BodyStream has it)."""

    def read(self, size: int | None = -1) -> bytes: ...


class SpooledBody:
    """The body read: `data` (in memory) or `file` (a temporary file positioned at its start,
    closed by `close()`), and its `size` in bytes."""

    __slots__ = ("data", "file", "size")

    def __init__(self, data: bytes, file: IO[bytes] | None, size: int) -> None:
        self.data = data
        self.file = file
        self.size = size

    def close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.close()  # unlinked already: closing frees its disk space


def spool(stream: ReadableBody, threshold: int = SPOOL_THRESHOLD, limit: int | None = None) -> SpooledBody:
    """Read `stream` to its end: in memory up to `threshold` bytes, else in a temporary file.
    More than `limit` bytes (when given) is a 413, raised as soon as they are read."""
    parts: list[bytes] = []
    size = 0
    file: IO[bytes] | None = None
    try:
        while True:
            part = stream.read(READ_SIZE)
            if not part:
                break
            size += len(part)
            if limit is not None and size > limit:
                raise HTTPError(413, "request body too large", close=True)
            if file is not None:
                file.write(part)
                continue
            parts.append(part)
            if size > threshold:
                file = tempfile.TemporaryFile(prefix="x15g-body-")
                file.writelines(parts)
                parts = []
        if file is None:
            return SpooledBody(b"".join(parts), None, size)
        file.flush()
        file.seek(0)
        return SpooledBody(b"", file, size)
    except BaseException:
        if file is not None:
            file.close()
        raise
