"""Soak one x15g worker with browser-like heads: RSS growth and rate over time.

Runs wrk with the `browser` scenario's script (tools/bench_workload.py: the SPECweb99-like static
mix, browser-like heads from 5,000 visitors) in back-to-back slices against one pinned x15g worker
and prints, per slice, the rate and the worker's resident memory, then the growth and the ratio of
the last slice's rate to the first's. Caches keyed by head bytes that keep what never comes again
show as RSS that grows and a rate that falls.

    flock /tmp/x15g-bench.lock .venv/bin/python -m tools.bench_soak --duration 60 --slice 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from tools import bench_servers as srv
from tools import bench_workload as wl


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    """The one worker of a `--workers 1` master (its only child)."""
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    if not out:
        raise RuntimeError("x15g has no worker process")
    return int(out[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=60, help="seconds in all (default: %(default)s)")
    p.add_argument("--slice", type=int, default=10, help="seconds per wrk run (default: %(default)s)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    p.add_argument("--x15g-args", default="", help="extra x15g options")
    args = p.parse_args(argv)
    wrk = srv.find_tool("wrk")
    if wrk is None:
        print("wrk is not installed (sudo tools/install-bench-deps.sh)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="x15g-soak-") as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        dirs = wl.directory_count(args.connections)
        wl.build_docroot(root, dirs)
        script = os.path.join(tmp, "browser.lua")
        with open(script, "w") as f:
            f.write(wl.lua_browser_script(wl.mix_sequence(dirs)))
        ctx = srv.Context(root, tmp, args.server_cpu, args.x15g_args.split())
        running = srv.start_server("x15g", ctx)
        try:
            pid = worker_pid(running.proc.pid)
            start_rss = rss_kib(pid)
            print(f"worker {pid}: RSS {start_rss / 1024:.1f} MiB before", flush=True)
            rates = []
            for n in range(max(1, args.duration // args.slice)):
                cmd = srv.pin(args.client_cpu) + [wrk, "-t1", f"-c{args.connections}", f"-d{args.slice}s",
                                                  "--timeout", "5s", "-s", script,
                                                  f"http://127.0.0.1:{running.port}/"]
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.slice + 60).stdout
                line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
                res = json.loads(line.split(" ", 1)[1])
                rate = res["requests"] / (res["duration_us"] / 1e6)
                rates.append(rate)
                print(f"slice {n + 1}: {rate:9.0f} req/s  RSS {rss_kib(pid) / 1024:6.1f} MiB  "
                      f"p99 {res['p99_us'] / 1000:.2f} ms  non-2xx {res['status']}", flush=True)
            growth = (rss_kib(pid) - start_rss) / 1024
            print(f"RSS growth {growth:+.1f} MiB over {len(rates) * args.slice} s; "
                  f"last slice / first slice rate {rates[-1] / rates[0]:.2f}x")
        finally:
            srv.stop_server(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
