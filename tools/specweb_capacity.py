#!/usr/bin/env python3
"""Search x15g's maximum SPECweb99-like conforming connections on this machine (§4: rerun with increasing N).

For each N: (re)generate a file set sized for N (spec formula, or --dirs), start a fresh
`x15g --specweb`, run the locust suite headless with N users, read its summary. N doubles from
--start while runs are valid, then bisects between the last valid and the first invalid N down to
--resolution. Prints every run and the result with the machine description.

    tools/specweb_capacity.py --start 50 --max 3200 --warmup 10 --measure 30
    tools/specweb_capacity.py --start 1500 --max 1500 --dirs 20 --locust-workers 2   # one N only
    tools/specweb_capacity.py --floor 1500 --start 2000 --max 2000 --resolution 250 --dirs 20 --locust-workers 2

Each line shows the load generator's CPU per operation (all locust processes, in the measurement
interval) and x15g's CPU (master, workers and reaped CGI children, over the whole run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from loadtests import cli as lr
from loadtests.specweb_summary import machine
from x15g.specweb.fileset import directory_count


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of process `pid` and its children (x15g's master and workers; reaped CGI children
    count in their parent's cutime/cstime)."""
    total = 0.0
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def run_once(work: Path, n: int, args: argparse.Namespace, sized: list[int]) -> dict:
    """One complete run at N users; regenerates the file set when it is too small for N."""
    dirs = args.dirs or directory_count(n)
    if not sized or sized[0] < dirs:
        lr.make_fileset(work, n, dirs)
        sized[:] = [dirs]
    dirs = sized[0]
    port = lr.free_port()
    server = lr.start_server(work / "docroot", port, args.server_workers, work / "x15g.log")
    out = work / ("summary-%d.json" % n)
    cpu0, t0 = tree_cpu_seconds(server.pid), time.time()
    try:
        cmd = lr.locust_command("http://127.0.0.1:%d" % port, n, dirs, args.warmup, args.measure, args.rampdown,
                                max(10.0, n / 2), str(out), False, [])
        lr.run_locust(cmd, args.locust_workers, args.warmup + args.measure + args.rampdown + 300)
        server_cpu = 100 * (tree_cpu_seconds(server.pid) - cpu0) / (time.time() - t0)
    finally:
        lr.stop(server)
    s = json.loads(out.read_text()) if out.exists() else {"valid": False, "reasons": ["no summary"]}
    s["x15g_cpu_pct_of_a_core"] = round(server_cpu, 1)  # over the whole locust run, ramp-up included
    return s


def search(args: argparse.Namespace) -> tuple[int, list[dict]]:
    """(largest valid N found, all summaries)."""
    work = Path(args.root or tempfile.mkdtemp(prefix="x15g-capacity-"))
    work.mkdir(parents=True, exist_ok=True)
    sized: list[int] = []
    runs: list[dict] = []

    def attempt(n: int) -> bool:
        s = run_once(work, n, args, sized)
        s["N_tried"] = n
        runs.append(s)
        ops = sum(s.get("ops_per_s", {}).values())
        print("N=%-6d valid=%-5s conforming %s/%s (%.1f%%) errors %s, %.0f validated ops/s, locust %s us/op, "
              "x15g %s%% of a core%s" % (
                  n, s.get("valid"), s.get("conforming"), s.get("users"), s.get("conforming_pct", 0),
                  s.get("error_count"), ops, s.get("client_cpu_us_per_op"), s.get("x15g_cpu_pct_of_a_core"),
                  "" if s.get("valid") else "  " + "; ".join(s.get("reasons", []))), flush=True)
        return bool(s.get("valid"))

    good, bad, n = args.floor, 0, args.start
    while n <= args.max:
        if not attempt(n):
            bad = n
            break
        good, n = n, n * 2
    if not bad:
        return good, runs
    while bad - good > args.resolution:
        mid = (good + bad) // 2
        if attempt(mid):
            good = mid
        else:
            bad = mid
    return good, runs


def main() -> int:
    """Command-line entry; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, default=50)
    ap.add_argument("--max", type=int, default=3200)
    ap.add_argument("--resolution", type=int, default=10, help="stop bisecting when the gap is this small")
    ap.add_argument("--floor", type=int, default=0, help="an N already found valid: bisect down to it, not to 0")
    ap.add_argument("--dirs", type=int, default=0, help="file-set directories (0: the spec formula for each N)")
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--measure", type=float, default=30)
    ap.add_argument("--rampdown", type=float, default=3)
    ap.add_argument("--server-workers", type=int, default=1, help="x15g --workers")
    ap.add_argument("--locust-workers", type=int, default=0, help="locust worker processes (0: one local process)")
    ap.add_argument("--root", default="")
    ap.add_argument("--json", default="", help="write the result and every run's summary here")
    args = ap.parse_args()
    best, runs = search(args)
    m = machine()
    score = max((r.get("score", 0) for r in runs if r.get("valid") and r.get("N_tried") == best), default=0)
    print("\nx15g SPECweb99-like result: largest valid N %d, score %d conforming connections (timing %s/%s/%s s, %s; "
          "x15g --workers %d, locust workers %d)" % (
              best, score, args.warmup, args.measure, args.rampdown, runs[-1].get("timing", "?") if runs else "?",
              args.server_workers, args.locust_workers))
    print("machine: %s cores, %s, %.1f GB RAM (load generator on the same machine)" % (
        m["nproc"], m["cpu"], m["ram_bytes"] / 2**30))
    print("command: %s" % " ".join(sys.argv))
    if args.json:
        Path(args.json).write_text(json.dumps({"largest_valid_n": best, "score": score, "machine": m, "runs": runs},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
