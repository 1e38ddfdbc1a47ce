"""Page-cache residency: is a file range in memory, and warming it when it is not.

`os.sendfile` of pages that are not cached blocks the whole process, so every connection of the
worker would wait for one cold file (the Flash lesson, architecture.md, "The caches"). `probe` asks the kernel
without blocking: `preadv(..., RWF_NOWAIT)` answers EAGAIN instead of reading from disk. It reads
one byte per STRIDE of the range, a cheap sample (Flash's helpers used mincore the same way).
`warm` runs in the threadpool (through DiskIO) and reads the range so the later sendfile hits
memory.
"""

from __future__ import annotations

import errno
import os

STRIDE = 256 * 1024
WARM_CHUNK = 1024 * 1024
# Larger ranges are warmed one window at a time by whoever sends them (see FileCache.ensure_resident).
WARM_WINDOW = 64 * 1024 * 1024

_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)
_probe_buffer = [bytearray(1)]  # one-byte sink; probes run on the hub thread only
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def probe(fd: int, offset: int, count: int) -> bool | None:
    """True if every sampled page of [offset, offset+count) is cached, False if one is not,
    None if this kernel or filesystem cannot tell (then callers treat the file as resident)."""
    if not _NOWAIT:
        return None
    end = offset + count
    position = offset
    try:
        while position < end:
            if os.preadv(fd, _probe_buffer, position, _NOWAIT) == 0:
                return True  # end of file: the file shrank; the sender will notice
            position += STRIDE
        if (end - 1 - offset) % STRIDE:
            os.preadv(fd, _probe_buffer, end - 1, _NOWAIT)  # the last page too
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise
    return True


def warm(fd: int, offset: int, count: int) -> None:
    """Blocking: bring [offset, offset+count) into the page cache (call through DiskIO.run)."""
    try:
        os.posix_fadvise(fd, offset, count, os.POSIX_FADV_WILLNEED)
    except (OSError, AttributeError):
        pass  # advice only
    buffer = bytearray(min(WARM_CHUNK, max(count, 1)))
    view = memoryview(buffer)
    position, end = offset, offset + count
    while position < end:
        want = min(len(buffer), end - position)
        got = os.preadv(fd, [view[:want]], position)
        if got <= 0:
            break
        position += got
