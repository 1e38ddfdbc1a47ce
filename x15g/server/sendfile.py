"""Zero-copy file bodies: `os.sendfile` on the non-blocking socket, waiting on the hub when full.

gevent's own `socket.sendfile` reads the file through Python in 8 KiB chunks; this loop lets the
kernel move the pages. The head goes first with MSG_MORE so head and the first file bytes leave in
the same segments.
"""

from __future__ import annotations

import os
import socket

from gevent.socket import wait_write

from x15g.http.messages import FileRange

_MSG_MORE = getattr(socket, "MSG_MORE", 0)


class FileShrunk(Exception):
    """The file ended before the announced Content-Length: the connection must close."""


def send_file(sock: socket.socket, head: bytes, part: FileRange, timeout: float) -> None:
    """Send `head` then `part.count` bytes of `part.fd` from `part.offset`.

    Raises FileShrunk when the file is shorter than announced, socket.timeout when the client
    makes no progress for `timeout` seconds, OSError when it goes away.
    """
    if head:
        sock.sendall(head, _MSG_MORE)
    fileno = sock.fileno()
    offset = part.offset
    remaining = part.count
    fd = part.fd
    while remaining > 0:
        try:
            sent = os.sendfile(fileno, fd, offset, remaining)
        except BlockingIOError:
            wait_write(fileno, timeout=timeout, timeout_exc=socket.timeout("send timed out"))
            continue
        if sent == 0:
            raise FileShrunk(f"file ended {remaining} bytes before the announced length")
        offset += sent
        remaining -= sent
