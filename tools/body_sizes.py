"""Where `--small-file-size` should be: each file size served from memory and by sendfile.

One pinned x15g worker serves files of 1-64 KiB, once with every body held in memory (sent with
the head in one `send`/`sendmsg`) and once with every body sent by `sendfile` after the head
(`--small-file-size 0`); wrk (1 thread, 50 connections, pinned to the other CPU) asks for one file
at a time, the two servers alternating within each repetition. Prints req/s and the worker's CPU
microseconds per request for both, and the largest size where memory still costs less.

    flock /tmp/x15g-bench.lock .venv/bin/python -m tools.body_sizes --duration 3s --reps 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from tools import bench as bench
from tools import bench_servers as srv
from tools import bench_workload as wl

SIZES_KIB = (1, 2, 4, 8, 16, 32, 64)
MODES = {"memory": ["--small-file-size", str(1 << 30)], "sendfile": ["--small-file-size", "0"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.body_sizes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", default="3s", help="each measured wrk run (default %(default)s)")
    p.add_argument("--warmup", default="1s", help="a wrk run before each size (default %(default)s)")
    p.add_argument("--reps", type=int, default=2, help="measurements per size and mode (default %(default)s)")
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    args = p.parse_args(argv)
    args.threads = 1
    if srv.find_tool("wrk") is None:
        raise SystemExit(f"wrk is not installed; {srv.INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="x15g-sizes-") as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        for kib in SIZES_KIB:
            with open(os.path.join(root, f"{kib}k.bin"), "wb") as f:
                f.write(os.urandom(kib * 1024))
        script = os.path.join(tmp, "done.lua")
        with open(script, "w") as f:
            f.write(wl.lua_done_script())
        running = {}
        try:
            for mode, extra in MODES.items():
                ctx = srv.Context(root, tmp, args.server_cpu, x15g_args=extra)
                running[mode] = srv.start_server("x15g", ctx)
            print(f"{'size':>6} | {'memory req/s':>12} {'us/req':>6} | {'sendfile req/s':>14} {'us/req':>6}")
            best = 0
            for kib in SIZES_KIB:
                sc = bench.Scenario(f"{kib}k", f"/{kib}k.bin", 50)
                figures: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
                for rep in range(args.reps):
                    order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
                    for mode in order:
                        port, pgid = running[mode].port, running[mode].proc.pid
                        if rep == 0 and bench.seconds(args.warmup) > 0:
                            bench.run_wrk(args, sc, port, args.warmup, script)
                        res = bench.run_wrk(args, sc, port, args.duration, script, pgid)
                        figures[mode].append((res["rps"], 1e6 / res["req_per_cpu_s"] if res["req_per_cpu_s"] else 0.0))
                med = {mode: (statistics.median(r for r, _ in v), statistics.median(u for _, u in v))
                       for mode, v in figures.items()}
                print(f"{kib:>4}KiB | {med['memory'][0]:>12,.0f} {med['memory'][1]:>6.2f} | "
                      f"{med['sendfile'][0]:>14,.0f} {med['sendfile'][1]:>6.2f}", flush=True)
                if med["memory"][1] <= med["sendfile"][1]:
                    best = kib
            print(f"memory costs no more than sendfile up to {best} KiB" if best else "sendfile always cost less")
        finally:
            for r in running.values():
                srv.stop_server(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
