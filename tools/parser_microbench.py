"""Time request-head parsing: the pure parser on a repeated head, on heads whose field block it
has parsed before (a visitor's next request: the same fields, another target), on heads that
never repeat, and llhttp (httptools) on the same new heads when it is installed.

Usage: python tools/parser_microbench.py [iterations]. Prints microseconds per head (best of five
runs of CPU time). The new heads are browser-like (six fields, a per-visitor cookie, a counter in
the query), each parsed once, as under traffic where no cache can hit.

httptools is measured at its best: its C parser plus the Python callbacks that collect the
target and the fields into a dict, without any of the checks the pure parser adds on top (Host
rules, singleton fields, Content-Length/Transfer-Encoding smuggling rules); a server would still
need those, so the real cost with it would be higher than the figure printed.
"""

from __future__ import annotations

import sys
import time
import timeit
from typing import Any

from x15g.http.parser import Limits, parse_head

REQUEST = (
    b"GET /images/logo.png?v=3 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: image/avif,image/webp,*/*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)


def new_heads(count: int) -> list[bytes]:
    """`count` distinct browser-like heads (a counter in the query and in the cookie)."""
    return [REQUEST.replace(b"?v=3", b"?v=%d" % n).replace(
        b"Connection: keep-alive\r\n", b"Cookie: session=%016x; theme=light\r\nConnection: keep-alive\r\n" % n)
        for n in range(count)]


def best_of(stmt: Any, number: int) -> float:
    # CPU time, not wall time: other processes on the 2-core machine do not inflate the figure.
    runs = timeit.repeat(stmt, number=number, repeat=5, timer=time.process_time)
    return min(runs) / number * 1e6


class _Collect:
    """httptools callbacks: what a Request needs (target, fields)."""

    __slots__ = ("url", "headers", "done")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.done = True


def main() -> None:
    """Run the benchmarks and print µs per parsed head."""
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    limits = Limits()
    parse_head(REQUEST, limits)
    parse_head(REQUEST, limits)  # cached from its second sighting
    print(f"pure parser, repeated head (whole-head cache):  {best_of(lambda: parse_head(REQUEST, limits), iterations):.2f} µs")
    targets = iter([REQUEST.replace(b"?v=3", b"?v=%d" % n) for n in range(iterations * 6)])
    print(f"pure parser, known fields, new request line:     {best_of(lambda: parse_head(next(targets), limits), iterations):.2f} µs")
    heads = new_heads(iterations * 6)  # never the same head (or field block) twice over all runs
    feed = iter(heads)
    print(f"pure parser, new heads:                          {best_of(lambda: parse_head(next(feed), limits), iterations):.2f} µs")
    try:
        import httptools
    except ImportError:
        print("httptools not installed (.venv/bin/pip install httptools) - not measured")
        return
    feed = iter(heads)

    def llhttp() -> None:
        collect = _Collect()
        parser = httptools.HttpRequestParser(collect)
        parser.feed_data(next(feed))
        parser.get_method()
        parser.should_keep_alive()
        httptools.parse_url(collect.url)

    print(f"httptools (llhttp) + callbacks, new heads:      {best_of(llhttp, iterations):.2f} µs")


if __name__ == "__main__":
    main()
