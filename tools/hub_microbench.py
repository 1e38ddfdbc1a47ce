"""The Python cost of one request on the hub path, in process: a `Connection` parked as between
keep-alive requests, a client on the other end of a socketpair.

Per request: the client sends a head, the read watcher's callback runs (`recv`, the ready-answer
lookups by the exact bytes and by what the head selects, and when they miss the parse, the static
responder's `respond_now`, the answer's Outgoing, the ready store's rule), the answer is sent as `_send_answers` sends it after a loop turn, and the client
reads it. The same four system calls alone are timed too, so the difference is the Python a
worker spends per request, without the event loop's and the loopback TCP's share (`perf` puts
those at a third to a half of a real worker's time: docs/performance.md).

    python -m tools.hub_microbench --heads unique     # a counter in the query: selected answers
    python -m tools.hub_microbench --heads browser    # browser-like, a new cookie per request
    python -m tools.hub_microbench --heads visitor    # browser-like, 8 requests per visitor
    python -m tools.hub_microbench --heads repeat     # the same head: ready answers by its bytes

Prints the best of --reps runs of --requests requests, in microseconds per request. A
measurement tool, not a test: run it on a quiet machine (`flock /tmp/x15g-bench.lock ...` beside
other benchmarks) and compare alternating runs of two checkouts.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import _socket  # noqa: E402
import gevent  # noqa: E402

from x15g.app.build import build_app  # noqa: E402
from x15g.config import default_settings  # noqa: E402
from x15g.diskio import DiskIO  # noqa: E402
from x15g.server.connection import IDLE, Connection  # noqa: E402
from x15g.server.worker import ServingContext  # noqa: E402

BROWSER = (b"GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
           b"Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n"
           b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
           b"Referer: http://127.0.0.1/page%d.html\r\nCookie: session=%016x; theme=light\r\n"
           b"Connection: keep-alive\r\n\r\n")
FILES = 16  # 1 KiB files, so visitors' requests name different targets


def head(kind: str, n: int) -> bytes:
    """The `n`th request head of a kind (see the module doc)."""
    name = b"f%d.bin" % (n % FILES)
    if kind == "unique":
        return b"GET /%s?n=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (name, n)
    if kind == "browser":
        return BROWSER % (name, n % 97, n)
    if kind == "visitor":
        visitor = n // 8
        return BROWSER % (name, visitor % 97, visitor)
    return b"GET /f0.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.hub_microbench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heads", choices=("unique", "browser", "visitor", "repeat"), default="unique")
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--size", type=int, default=1024, help="bytes of each file (default: %(default)s)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        for i in range(FILES):
            with open(os.path.join(root, "f%d.bin" % i), "wb") as f:
                f.write(b"x" * args.size)
        print(run(root, args.heads, args.requests, args.reps, args.size))


def run(root: str, kind: str, requests: int, reps: int, size: int = 1024) -> str:
    settings = default_settings(root=root, cache_revalidate=3600)
    ctx = ServingContext(settings, None, None)
    ctx.app = build_app(settings, DiskIO(2), ctx)
    ours, theirs = socket.socketpair()
    server = _socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, ours.detach())
    client = _socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, theirs.detach())
    server.setblocking(False)
    connection = Connection(server, ("127.0.0.1", 5555), ctx)
    connection.read_event = ctx.loop.io(server.fileno(), 1)  # as _park leaves it
    connection.state = IDLE
    for i in range(FILES):  # fill the file cache (the greenlet path: a miss reads the disk)
        client.send(head("repeat", 0).replace(b"/f0.bin", b"/f%d.bin" % i))
        connection.served = 1
        connection.buffer = server.recv(65536)  # a socketpair: already there
        gevent.spawn(_serve, connection).join()
        client.recv(65536)
    best = float("inf")
    pending = object()  # keeps hub_answers non-empty: no loop callback is scheduled
    clock = time.perf_counter
    for rep in range(reps):
        heads = [head(kind, n) for n in range(rep * requests, (rep + 1) * requests)]
        ctx.hub_answers = [pending]
        started = clock()
        for data in heads:
            connection.served = 1  # stay under the per-connection request limit
            client.send(data)
            connection._on_readable()
            ctx.hub_answers.pop()._send_made()
            client.recv(65536)
        best = min(best, (clock() - started) / requests)
        if connection.state is not IDLE:
            raise SystemExit(f"the connection left the hub path ({connection.state}): not measured")
    answer = b"x" * (size + 200)  # as large as an answer with its head
    started = clock()
    for data in heads:
        client.send(data)
        server.recv(65536)
        server.send(answer)
        client.recv(65536)
    bare = (clock() - started) / requests
    counters = ctx.counters
    return (f"{kind}: {best * 1e6:.2f} us per request on the hub path, of which the four system calls "
            f"{bare * 1e6:.2f} us: Python {(best - bare) * 1e6:.2f} us (ready answers {counters.ready_answers}, "
            f"immediate {counters.immediate_answers})")


def _serve(connection: Connection) -> None:
    """Answer the request in `connection.buffer` through the greenlet path."""
    connection.greenlet = gevent.getcurrent()
    connection._serve()
    connection.greenlet = None


if __name__ == "__main__":
    main()
