"""Streaming WSGI figures for x15g (issue 12): how late the first byte of a streamed answer
arrives after the app yields it, and how much a worker's memory grows while it streams a large
generated body. x15g runs with one worker (pinned with --server-cpu), the client on another CPU.

    .venv/bin/python tools/wsgi_streaming.py --runs 20 --big 1073741824

First byte: GET /ticks?10,0.1 (10 chunks, 100 ms apart); each chunk carries the time the app
yielded it; the figure is the client's arrival time minus that, for the first chunk and for all.
Memory: the worker's VmRSS while idle and its peak while a client reads GET /big?BYTES as fast as
it can (sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # bench_servers uses tests.support

import bench_servers as srv  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def get(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    return sock


def tick_delays(port: int) -> list[float]:
    """Arrival minus yield time of each chunk of one /ticks answer (seconds)."""
    sock = get(port, "/ticks?10,0.1")
    delays, buf, head_done = [], b"", False
    with sock:
        while True:
            data = sock.recv(65536)
            now = time.time()
            if not data:
                break
            buf += data
            if not head_done:
                if b"\r\n\r\n" not in buf:
                    continue
                buf = buf.partition(b"\r\n\r\n")[2]
                head_done = True
            lines = buf.split(b"\r\n")
            buf = lines.pop()  # an incomplete chunk line stays
            for line in lines:
                line = line.strip()  # chunk data is b"TIME\n"; size lines are hex without a dot
                if line.count(b".") == 1 and line.replace(b".", b"").isdigit():
                    delays.append(now - float(line.decode()))
            if b"0\r\n" == buf or len(delays) >= 10:
                break
    return delays


def big_peak(port: int, pid: int, total: int) -> tuple[int, int, float]:
    """(idle RSS, peak RSS while streaming, seconds) for GET /big?total read at full speed."""
    idle = rss_kib(pid)
    peak = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    received = 0
    try:
        with get(port, f"/big?{total}") as sock:
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    break
                received += len(data)
    finally:
        done.set()
        sampler.join()
    if received < total:
        raise RuntimeError(f"received {received} bytes of {total}")
    return idle, peak[0], time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="/ticks answers to measure (default: %(default)s)")
    p.add_argument("--big", type=int, default=1 << 30, help="bytes of the generated body (default: 1 GiB)")
    p.add_argument("--server-cpu", default="0", help="CPU for x15g (taskset -c), or 'none'")
    args = p.parse_args(argv)
    cpu = None if args.server_cpu == "none" else args.server_cpu
    tmp = tempfile.mkdtemp(prefix="x15g-stream-")
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    ctx = srv.Context(root, tmp, cpu, [], app="stream_wsgi:app")
    running = srv.start_server("x15g", ctx)
    try:
        pid = int(srv.get(running.port, "/pid")[1])
        firsts, alls = [], []
        for _ in range(args.runs):
            delays = tick_delays(running.port)
            firsts.append(delays[0])
            alls.extend(delays)
        idle, peak, seconds = big_peak(running.port, pid, args.big)
    finally:
        srv.stop_server(running)
    ms = [d * 1000 for d in firsts]
    print(f"first chunk of /ticks?10,0.1 after its yield: median {statistics.median(ms):.2f} ms, "
          f"max {max(ms):.2f} ms over {args.runs} answers (target: within 20 ms)")
    print(f"every chunk: median {statistics.median(alls) * 1000:.2f} ms, max {max(alls) * 1000:.2f} ms")
    print(f"GET /big?{args.big}: {args.big / seconds / 2**20:.0f} MiB/s; worker RSS idle {idle / 1024:.1f} MiB, "
          f"peak {peak / 1024:.1f} MiB (+{(peak - idle) / 1024:.1f} MiB; target under +64 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
