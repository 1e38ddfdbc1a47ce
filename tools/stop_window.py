#!/usr/bin/env python3
"""Measure what a stop loses: SIGTERM to `x15g --specweb` in the middle of POST load, many times.

Each run starts x15g (2 workers) on a fresh small file set, lets `--fresh` clients POST on a new
connection each and `--keepalive` clients on one connection each (tests/support/stopload.py), sends
SIGTERM once 300 POSTs were acknowledged, waits for the exit and reads the post log. Prints the
totals as JSON: acknowledged, written and left unanswered (the number that must be 0),
refused at connect, acknowledged but not in the post log exactly once, unanswered but processed.

Usage: .venv/bin/python -m tools.stop_window [--runs 20] [--fresh 40] [--keepalive 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path

from tests.support.server import ServerProcess
from tests.support.stopload import StopLoad, post_log_clients
from tests.support.waiting import wait_for
from x15g.specweb import fileset_cli

RESET = "/specweb99?command/Reset&maxload=40&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/"


def one_stop(fresh: int, keepalive: int) -> Counter:
    base = Path(tempfile.mkdtemp(prefix="x15g-stop-"))
    try:
        root = base / "docroot"
        fileset_cli.main(["--conns", "1", "--dirs", "2", "--root", str(root)])
        with ServerProcess(root, "--specweb", workers=2) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", RESET)
            conn.getresponse().read()
            conn.close()
            with StopLoad(server.port, fresh, keepalive) as load:
                wait_for(lambda: len(load.acked) > 300, 30)
                server.signal(signal.SIGTERM)
                server.proc.wait(30)
        logged = Counter(post_log_clients(str(base / "specweb_state" / "post.log")))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return Counter(acked=len(load.acked), unanswered=len(load.unanswered), refused=load.refused,
                   not_written=load.unsent, acked_not_logged_once=sum(1 for c in load.acked if logged[c] != 1),
                   unanswered_but_processed=sum(1 for c, _ in load.unanswered if logged[c]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--fresh", type=int, default=40)
    parser.add_argument("--keepalive", type=int, default=8)
    args = parser.parse_args()
    total: Counter = Counter()
    for _ in range(args.runs):
        total.update(one_stop(args.fresh, args.keepalive))
    print(json.dumps({"runs": args.runs, "fresh": args.fresh, "keepalive": args.keepalive, **total}))


if __name__ == "__main__":
    main()
