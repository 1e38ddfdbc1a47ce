"""Zero-copy file bodies: `os.sendfile` on the non-blocking socket, waiting on the hub when full.

gevent's own `socket.sendfile` reads the file through Python in 8 KiB chunks; this loop lets the
kernel move the pages. The caller sends the head first with MSG_MORE so head and the first file
bytes leave in the same segments.
"""

from __future__ import annotations

import os
from typing import Callable

from x15g.http.messages import FileRange


class FileShrunk(Exception):
    """The file ended before the announced Content-Length: the connection must close."""


def send_file(fileno: int, part: FileRange, wait_writable: Callable[[], None]) -> None:
    """Send `part.count` bytes of `part.fd` from `part.offset` to the socket `fileno`.

    `wait_writable` blocks the calling greenlet until the socket can take more (and raises when
    the client made no progress in time). Raises FileShrunk when the file is shorter than
    announced, OSError when the client goes away.
    """
    offset = part.offset
    remaining = part.count
    fd = part.fd
    while remaining > 0:
        try:
            sent = os.sendfile(fileno, fd, offset, remaining)
        except BlockingIOError:
            wait_writable()
            continue
        if sent == 0:
            raise FileShrunk(f"file ended {remaining} bytes before the announced length")
        offset += sent
        remaining -= sent
