"""Time `parse_head` on a typical browser-like GET with six header fields.

Usage: python tools/parser_microbench.py [iterations]. Prints microseconds per request (best of
five runs of CPU time).
"""

from __future__ import annotations

import sys
import time
import timeit

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


def main() -> None:
    """Run the benchmark and print µs per parsed head."""
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    limits = Limits()
    parse_head(REQUEST, limits)  # warm the field-name cache
    # CPU time, not wall time: other processes on the 2-core machine do not inflate the figure.
    runs = timeit.repeat(lambda: parse_head(REQUEST, limits), number=iterations, repeat=5,
                         timer=time.process_time)
    best = min(runs) / iterations * 1e6
    print(f"parse_head, 6-header GET: {best:.2f} µs/request (best of 5 x {iterations})")


if __name__ == "__main__":
    main()
