"""Zero-copy file bodies: the connection sends a `FileRange` with `os.sendfile` on its
non-blocking socket (connection.Connection._send_range), after a head sent with MSG_MORE so head
and the first file bytes leave in the same segments; the kernel moves the pages.
"""

from __future__ import annotations


class FileShrunk(Exception):
    """The file ended before the announced Content-Length: the connection must close."""
