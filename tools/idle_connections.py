#!/usr/bin/env python3
"""Memory and speed of one x15g worker holding many idle keep-alive connections (issue 3).

Starts x15g with one worker, measures its request rate with wrk (a Python client loop when wrk is
missing), then opens `--connections` (default 10,000) keep-alive connections that each send one
request, read the answer and stay idle. With those open it reads the worker's RSS from
/proc/PID/status and measures the rate again. Targets: RSS < 200 MiB, at most 2 KiB of RSS per
idle connection, rate >= 0.8 x without them.

The file-descriptor limit is raised here, in the script, and the server inherits it: x15g's own
defaults are not touched (the issue asks for exactly that).

    python -m tools.idle_connections [--connections 10000] [--duration 5s] [--x15g-args "..."]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import socket
import statistics
import sys
import tempfile
import time
import types

from tools import bench
from tools import bench_servers as srv
from tools import bench_workload as wl

RSS_TARGET_MIB = 200.0
PER_CONNECTION_TARGET_KIB = 2.0
RATE_TARGET = 0.8
REQUEST = b"GET " + wl.ONE_K.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10_000, help="idle keep-alive connections (default: 10000)")
    p.add_argument("--batch", type=int, default=500, help="connections opened per batch (default: 500)")
    p.add_argument("--duration", default="5s", help="duration of one rate measurement (default: 5s)")
    p.add_argument("--reps", type=int, default=2, help="rate measurements per phase (default: 2)")
    p.add_argument("--server-cpu", default="0", help="CPU list for x15g (taskset -c), or 'none'")
    p.add_argument("--client-cpu", default="1", help="CPU list for wrk, or 'none'")
    p.add_argument("--x15g-args", default="", help="extra arguments for x15g")
    p.add_argument("--server", default="x15g", choices=srv.ALL_SERVERS,
                   help="measure a peer instead, for comparison (default: x15g)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    for cpu in ("server_cpu", "client_cpu"):
        if getattr(args, cpu) == "none":
            setattr(args, cpu, None)
    return args


def raise_nofile(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE (and the hard one, if root) to `needed`; children
    started afterwards inherit it. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            needed = hard  # not root: go as high as allowed and let the caller decide
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (the workers of x15g's master), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # the command name is in parentheses and may hold spaces: split after it
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def rss_mib(pid: int) -> float:
    """VmRSS of `pid` in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def read_response(sock: socket.socket) -> int:
    """Read one HTTP response with a Content-Length body; returns its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the response body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def open_idle(port: int, count: int, batch: int) -> list[socket.socket]:
    """Open `count` connections in batches; each sends one request and reads its answer, then idles."""
    idle: list[socket.socket] = []
    while len(idle) < count:
        group = [socket.create_connection(("127.0.0.1", port), timeout=30)
                 for _ in range(min(batch, count - len(idle)))]
        for s in group:
            s.sendall(REQUEST)
        for s in group:
            status = read_response(s)
            if status != 200:
                raise RuntimeError(f"idle connection {len(idle)} got status {status}")
        idle.extend(group)
        if len(idle) % 2000 == 0 or len(idle) == count:
            print(f"opened {len(idle)}/{count} idle connections", flush=True)
    return idle


def still_open(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has not closed (recv would block rather than read EOF)."""
    alive = 0
    for s in socks:
        s.setblocking(False)  # a socket with a timeout would poll for readability first
        try:
            alive += s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def python_rate(port: int, seconds: float) -> float:
    """Fallback without wrk: requests per second of one keep-alive client loop."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done, end = 0, time.monotonic() + seconds
        start = time.monotonic()
        while time.monotonic() < end:
            s.sendall(REQUEST)
            read_response(s)
            done += 1
    return done / (time.monotonic() - start)


def measure_rate(args: argparse.Namespace, port: int, script: str, label: str) -> float:
    """Median req/s of `reps` runs (wrk with 50 connections, else the Python loop)."""
    rates = []
    for rep in range(args.reps):
        if srv.find_tool("wrk"):
            wrk_args = types.SimpleNamespace(client_cpu=args.client_cpu, threads=1)
            res = bench.run_wrk(wrk_args, bench.Scenario("1k", wl.ONE_K, 50), port, args.duration, script)
            rates.append(res["rps"])
            errors = res["socket_errors"] + res["status"]
        else:
            rates.append(python_rate(port, bench.seconds(args.duration)))
            errors = 0
        print(f"{label} rep {rep + 1}: {rates[-1]:,.0f} req/s, errors {errors}", flush=True)
    return statistics.median(rates)


def measure(args: argparse.Namespace, running: srv.Running, script: str) -> dict:
    """The three phases: rate alone, RSS and rate with the idle connections, rate after closing them."""
    workers = children(running.proc.pid) or [running.proc.pid]
    worker = workers[0]
    fig = {"worker_pid": worker, "rss_before_mib": rss_mib(worker)}
    fig["rate_before"] = measure_rate(args, running.port, script, "without idle connections")
    idle = open_idle(running.port, args.connections, args.batch)
    try:
        time.sleep(1.0)
        fig["rss_idle_mib"] = rss_mib(worker)
        fig["rss_all_processes_mib"] = sum(rss_mib(p) for p in [running.proc.pid, *children(running.proc.pid)])
        fig["rate_idle"] = measure_rate(args, running.port, script, f"with {args.connections} idle connections")
        fig["rss_after_load_mib"] = rss_mib(worker)
        fig["idle_still_open"] = still_open(idle)
    finally:
        for s in idle:
            s.close()
    time.sleep(1.0)
    fig["rate_after"] = measure_rate(args, running.port, script, "after closing them")
    return fig


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the figures against the targets."""
    args = parse_args(argv)
    limit = raise_nofile(args.connections + 1024)
    if limit < args.connections + 100:
        print(f"RLIMIT_NOFILE is {limit}: run as root or raise the hard limit (ulimit -Hn)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="x15g-idle-")
    running = None
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        wl.build_docroot(root, 0)
        script = os.path.join(tmp, "done.lua")
        with open(script, "w") as f:
            f.write(wl.lua_done_script())
        extra = ["--max-connections", str(max(20_000, 2 * args.connections)), "--keepalive-timeout", "3600"]
        ctx = srv.Context(root, tmp, args.server_cpu, extra + shlex.split(args.x15g_args))
        try:
            running = srv.start_server(args.server, ctx)
        except srv.Unavailable as exc:
            print(f"{args.server} could not start: {exc}", file=sys.stderr)
            return 2
        problem = srv.check_answers(running, root, [wl.ONE_K])
        if problem:
            print(f"{args.server} answers wrongly: {problem}\n{srv.log_tail(running.log_path)}", file=sys.stderr)
            return 2
        fig = measure(args, running, script)
    except KeyboardInterrupt:
        return 130
    finally:
        if running is not None:
            srv.stop_server(running)
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, fig)
    return 0


def report(args: argparse.Namespace, fig: dict) -> None:
    """Print the figures and whether they meet the targets; write JSON when asked."""
    base = (fig["rate_before"] + fig["rate_after"]) / 2
    fig["rate_ratio"] = fig["rate_idle"] / base if base else 0.0
    rss_ok = fig["rss_idle_mib"] < RSS_TARGET_MIB and fig["rss_after_load_mib"] < RSS_TARGET_MIB
    rate_ok = fig["rate_ratio"] >= RATE_TARGET
    fig["kib_per_connection"] = (fig["rss_idle_mib"] - fig["rss_before_mib"]) * 1024 / args.connections
    per_ok = fig["kib_per_connection"] <= PER_CONNECTION_TARGET_KIB
    print(f"\n{args.server} worker {fig['worker_pid']}, {args.connections} idle keep-alive connections "
          f"({fig['idle_still_open']} still open at the end)")
    print(f"RSS: {fig['rss_before_mib']:.1f} MiB before, {fig['rss_idle_mib']:.1f} MiB with them idle, "
          f"{fig['rss_after_load_mib']:.1f} MiB after the load run (target < {RSS_TARGET_MIB:.0f}): "
          f"{'met' if rss_ok else 'NOT met'}")
    print(f"per idle connection: {fig['kib_per_connection']:.2f} KiB "
          f"(target <= {PER_CONNECTION_TARGET_KIB:.0f}): {'met' if per_ok else 'NOT met'}")
    print(f"rate: {fig['rate_before']:,.0f} req/s before, {fig['rate_idle']:,.0f} with them, "
          f"{fig['rate_after']:,.0f} after; ratio {fig['rate_ratio']:.2f} "
          f"(target >= {RATE_TARGET}): {'met' if rate_ok else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"connections": args.connections, **fig}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
