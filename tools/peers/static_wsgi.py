"""A tiny static-file WSGI app, the same for every Python peer of tools/bench.

It does what a plain WSGI static handler does (no cache, no sendfile): map PATH_INFO under the
root, read the file, answer 200 with Content-Type and Content-Length, 404 otherwise. gunicorn and
granian import `app`, which serves the directory named by X15G_BENCH_ROOT; pywsgi_static.py calls
`make_app(root)` directly.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

CHUNK = 256 * 1024
TYPES = {".html": "text/html", ".txt": "text/plain", ".bin": "application/octet-stream"}


def make_app(root: str) -> Callable:
    """Return a WSGI app serving the files under `root`."""
    root = os.path.realpath(root)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        rel = environ.get("PATH_INFO", "/").lstrip("/")
        path = os.path.realpath(os.path.join(root, rel))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"not found\n"]
        size = os.path.getsize(path)
        ctype = TYPES.get(os.path.splitext(path)[1], "text/plain")
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(size))])
        if environ["REQUEST_METHOD"] == "HEAD":
            return [b""]
        if size <= CHUNK:  # one body string: the server sends head and body in one write
            with open(path, "rb") as f:
                return [f.read()]
        return _read_chunks(path)

    return app


def _read_chunks(path: str) -> Iterable[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


app = make_app(os.environ.get("X15G_BENCH_ROOT", "."))
