#!/usr/bin/env python3
"""Run the SPECweb99-like locust suite against a freshly started x15g (`make loadtest`, `make loadtest-ui`).

Generates a file set (`x15g-fileset --conns N --dirs D --root R/docroot`), starts
`x15g --specweb --root R/docroot --bind 127.0.0.1:PORT`, runs locust (headless, in the web UI, or
as a master with local workers), prints the summary and stops the server by its PID. The exit
code is locust's: 0 for a valid run. Extra locust arguments go after `--`.

    tools/loadtest_run.py --users 20 --dirs 3 --warmup 5 --measure 20
    tools/loadtest_run.py --ui                      # web UI on http://127.0.0.1:8089
    tools/loadtest_run.py --locust-workers 2        # master + 2 workers on 127.0.0.1
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOCUSTFILE = REPO / "loadtests" / "specweb99.py"
LOCUST_CONF = REPO / "loadtests" / "locust.conf"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_fileset(root: Path, conns: int, dirs: int, seed: int = 1999) -> Path:
    """Generate the file set (and the specweb state beside it); returns the docroot."""
    docroot = root / "docroot"
    subprocess.run([str(BIN / "x15g-fileset"), "--conns", str(conns), "--dirs", str(dirs), "--root",
                    str(docroot), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL, timeout=600)
    return docroot


def start_server(docroot: Path, port: int, workers: int = 1, log_path: Path | None = None,
                 extra: list[str] | None = None) -> subprocess.Popen:
    """Start `x15g --specweb` on 127.0.0.1:port and wait until it accepts connections."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([str(BIN / "x15g"), "--root", str(docroot), "--bind", "127.0.0.1:%d" % port,
                             "--workers", str(workers), "--specweb", *(extra or [])], stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("x15g exited with %s (log: %s)" % (proc.returncode, log_path))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError("x15g did not listen on port %d within 20 s" % port)


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def locust_command(host: str, users: int, dirs: int, warmup: float, measure: float, rampdown: float,
                   spawn_rate: float, summary_json: str, ui: bool, extra: list[str]) -> list[str]:
    """The locust command line of one (local or master) run."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--config", str(LOCUST_CONF),
           "--host", host, "-u", str(users), "-r", str(spawn_rate), "--specweb-dirs", str(dirs),
           "--specweb-warmup", str(warmup), "--specweb-measure", str(measure),
           "--specweb-rampdown", str(rampdown)]
    if summary_json:
        cmd += ["--summary-json", summary_json]
    cmd += ["--web-host", "127.0.0.1", "--web-port", "8089"] if ui else ["--headless"]
    return cmd + extra


def run_locust(cmd: list[str], workers: int, timeout: float | None) -> int:
    """Run locust (plus `workers` local worker processes when > 0); returns the master's exit code."""
    procs = []
    if workers:
        port = free_port()
        cmd = cmd + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                     "--expect-workers", str(workers)]
        worker_cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host",
                      "127.0.0.1", "--master-port", str(port)]
        procs = [subprocess.Popen(worker_cmd, cwd=REPO) for _ in range(workers)]
    master = subprocess.Popen(cmd, cwd=REPO)
    try:
        return master.wait(timeout)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        master.send_signal(signal.SIGINT)
        return master.wait(30)
    finally:
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                stop(p)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20, help="simultaneous connections N")
    ap.add_argument("--dirs", type=int, default=3, help="file-set directories D (0: the spec formula)")
    ap.add_argument("--spawn-rate", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--measure", type=float, default=30)
    ap.add_argument("--rampdown", type=float, default=5)
    ap.add_argument("--root", default="", help="work directory (default: a fresh temporary one)")
    ap.add_argument("--port", type=int, default=0, help="x15g port (default: a free one)")
    ap.add_argument("--server-workers", type=int, default=1, help="x15g --workers")
    ap.add_argument("--locust-workers", type=int, default=0, help="run locust as master + this many workers")
    ap.add_argument("--summary-json", default="")
    ap.add_argument("--ui", action="store_true", help="locust web UI on 127.0.0.1:8089 instead of headless")
    args = ap.parse_args(argv)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="x15g-loadtest-"))
    root.mkdir(parents=True, exist_ok=True)
    from x15g.specweb.fileset import directory_count
    dirs = args.dirs or directory_count(args.users)
    docroot = make_fileset(root, args.users, dirs)
    port = args.port or free_port()
    server = start_server(docroot, port, args.server_workers, root / "x15g.log")
    print("x15g pid %d on 127.0.0.1:%d, file set D=%d in %s" % (server.pid, port, dirs, docroot), flush=True)
    if args.ui:
        print("locust web UI: http://127.0.0.1:8089 (Ctrl-C to stop)", flush=True)
    try:
        cmd = locust_command("http://127.0.0.1:%d" % port, args.users, dirs, args.warmup, args.measure,
                             args.rampdown, args.spawn_rate, args.summary_json, args.ui, extra)
        return run_locust(cmd, args.locust_workers, None)
    finally:
        stop(server)


if __name__ == "__main__":
    sys.exit(main())
