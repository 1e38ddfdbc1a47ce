"""The streaming WSGI app tools/wsgi_streaming.py measures (any WSGI server can host it).

- `/ticks?COUNT,GAP`: COUNT chunks, GAP seconds apart; each chunk is `TIME\\n`, the wall-clock
  time at which the app yielded it, so a client on the same machine sees how late it arrived.
- `/big?BYTES`: a generated body of BYTES bytes in 64 KiB chunks, with its Content-Length.
- `/pid`: the serving process, for its RSS.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Iterator

BLOCK = b"x" * 65536


def _ticks(count: int, gap: float) -> Iterator[bytes]:
    for i in range(count):
        if i:
            time.sleep(gap)
        yield b"%.6f\n" % time.time()


def _big(total: int) -> Iterator[bytes]:
    while total > 0:
        yield BLOCK[:total]
        total -= len(BLOCK)


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    path, query = environ["PATH_INFO"], environ.get("QUERY_STRING", "")
    if path == "/ticks":
        count, _, gap = query.partition(",")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "no-cache")])
        return _ticks(int(count or 10), float(gap or 0.1))
    if path == "/big":
        total = int(query)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(total))])
        return _big(total)
    body = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
