"""x15g-loadtest: run the SPECweb99-like locust suite against x15g or any server (`make loadtest`, `make loadtest-ui`).

Without --host it generates a file set (`x15g-fileset --conns N --dirs D --root WORK/docroot`),
starts `x15g --specweb` on it on 127.0.0.1 and stops it by its PID at the end. With --host it
load-tests that server, which must serve the file set made by `x15g-fileset --conns N --dirs D`
(and the dynamic module, unless --static-only). Locust runs headless, with its web UI (--ui), as a
master with local worker processes (--locust-workers), as a master for workers on other machines
(--expect-workers, --master-bind), or as such a worker (--worker MASTER). The exit code is 0 for a
valid run. Extra locust arguments go after `--`.

    x15g-loadtest --users 20 --dirs 3 --warmup 5 --measure 20
    x15g-loadtest --ui                                  # web UI on http://127.0.0.1:8089
    x15g-loadtest --locust-workers 2 --html report.html --csv results/run
    x15g-loadtest --host http://127.0.0.1:8080 --users 50 --dirs 40 --static-only     # e.g. nginx
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "specweb99.py"
SHAPES = HERE / "shapes.py"
LOCUST_CONF = HERE / "locust.conf"
BIN = Path(sys.executable).parent
MASTER_PORT = 5557  # locust's default master port


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
    if wait_accepting(proc, port, 20):
        return proc
    if proc.poll() is not None:
        raise RuntimeError("x15g exited with %s (log: %s)" % (proc.returncode, log_path))
    stop(proc)
    raise RuntimeError("x15g did not listen on port %d within 20 s" % port)


def wait_accepting(proc: subprocess.Popen, port: int, timeout: float) -> bool:
    """Poll until 127.0.0.1:`port` accepts a connection (True); False once `proc` has exited or
    `timeout` seconds passed (`proc.poll()` tells which)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_step(text: str) -> dict[str, str]:
    """`START,STEP,SECONDS,MAX` -> the LOCUST_SPECWEB_STEP_* variables of loadtests/shapes.py."""
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("--step wants START,STEP,SECONDS,MAX, e.g. 50,50,30,300")
    try:
        start, step, seconds, top = int(parts[0]), int(parts[1]), float(parts[2]), int(parts[3])
    except ValueError:
        raise argparse.ArgumentTypeError("--step %r: START, STEP and MAX are integers, SECONDS a number" % text) from None
    if not (1 <= start <= top and step >= 1 and seconds > 0):
        raise argparse.ArgumentTypeError("--step %r: need 1 <= START <= MAX, STEP >= 1, SECONDS > 0" % text)
    return {"LOCUST_SPECWEB_STEP_START": str(start), "LOCUST_SPECWEB_STEP": str(step),
            "LOCUST_SPECWEB_STEP_TIME": str(seconds), "LOCUST_SPECWEB_STEP_MAX": str(top)}


def locust_command(host: str, users: int, dirs: int, warmup: float, measure: float, rampdown: float,
                   spawn_rate: float, summary_json: str, ui: bool, extra: list[str], web_port: int = 8089,
                   static_only: bool = False, step: bool = False, web_host: str = "127.0.0.1") -> list[str]:
    """The locust command line of one (local or master) run."""
    files = "%s,%s" % (LOCUSTFILE, SHAPES) if step else str(LOCUSTFILE)
    cmd = [sys.executable, "-m", "locust", "-f", files, "--config", str(LOCUST_CONF),
           "--host", host, "-u", str(users), "-r", str(spawn_rate), "--specweb-dirs", str(dirs),
           "--specweb-warmup", str(warmup), "--specweb-measure", str(measure),
           "--specweb-rampdown", str(rampdown)]
    if static_only:
        cmd.append("--specweb-static-only")
    if summary_json:
        cmd += ["--summary-json", summary_json]
    cmd += ["--web-host", web_host, "--web-port", str(web_port)] if ui else ["--headless"]
    return cmd + extra


def worker_command(master_host: str, master_port: int, step: bool = False) -> list[str]:
    """The command line of one locust worker process."""
    files = "%s,%s" % (LOCUSTFILE, SHAPES) if step else str(LOCUSTFILE)
    return [sys.executable, "-m", "locust", "-f", files, "--worker", "--master-host", master_host,
            "--master-port", str(master_port)]


def run_locust(cmd: list[str], workers: int, timeout: float | None, expect_workers: int = 0,
               master_bind: tuple[str, int] | None = None, env: dict[str, str] | None = None) -> int:
    """Run locust (as a master with `workers` local worker processes plus `expect_workers` remote
    ones, when either is > 0); returns the master's exit code."""
    procs = []
    env = {**os.environ, **(env or {})}
    if workers or expect_workers:
        bind_host, port = master_bind or ("127.0.0.1", free_port())
        cmd = cmd + ["--master", "--master-bind-host", bind_host, "--master-bind-port", str(port),
                     "--expect-workers", str(workers + expect_workers)]
        local = "127.0.0.1" if bind_host in ("0.0.0.0", "*", "") else bind_host
        step = "shapes.py" in cmd[cmd.index("-f") + 1]
        procs = [subprocess.Popen(worker_command(local, port, step), env=env) for _ in range(workers)]
    master = subprocess.Popen(cmd, env=env)
    try:
        return master.wait(timeout)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        master.send_signal(signal.SIGTERM)  # locust's own shutdown (SIGINT may be ignored in a background job)
        return master.wait(30)
    finally:
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                stop(p)


def _host_port(text: str, default_port: int = MASTER_PORT) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host or text, int(port) if port else default_port


def parser() -> argparse.ArgumentParser:
    """The command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="x15g-loadtest", description=__doc__.splitlines()[0],
                                 epilog="Locust options go after `--`, e.g. `-- --loglevel DEBUG`.")
    ap.add_argument("--host", default="", help="server to load-test, e.g. http://10.0.0.5:8000 (default: start "
                    "x15g on a fresh file set on 127.0.0.1)")
    ap.add_argument("--users", type=int, default=20, help="simultaneous connections N (default 20)")
    ap.add_argument("--dirs", type=int, default=3, help="file-set directories D the server's file set has "
                    "(0: the spec formula for N; default 3)")
    ap.add_argument("--spawn-rate", type=float, default=0, help="users started per second (default: N/5, at least 10)")
    ap.add_argument("--warmup", type=float, default=10, help="warm-up seconds after all N users run (default 10)")
    ap.add_argument("--measure", type=float, default=30, help="measurement interval seconds (default 30)")
    ap.add_argument("--rampdown", type=float, default=5, help="ramp-down seconds (default 5)")
    ap.add_argument("--static-only", action="store_true", help="static GETs only, no Reset or post.log (for "
                    "servers without the dynamic module, e.g. nginx); the verdict says it is not SPECweb99-like")
    ap.add_argument("--step", type=parse_step, metavar="START,STEP,SECONDS,MAX",
                    help="step shape: START users, +STEP every SECONDS up to MAX (= N); measured at MAX")
    ap.add_argument("--ui", action="store_true", help="locust web UI (with the SPECweb99 tab) instead of headless")
    ap.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    ap.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    ap.add_argument("--html", default="", metavar="FILE", help="write locust's HTML report with the summary")
    ap.add_argument("--csv", default="", metavar="PREFIX", help="write locust's CSV files and PREFIX_specweb99.csv")
    ap.add_argument("--summary-json", default="", metavar="FILE", help="write the summary as JSON")
    ap.add_argument("--locust-workers", type=int, default=0, help="run locust as a master with this many local "
                    "worker processes (default 0: one process)")
    ap.add_argument("--expect-workers", type=int, default=0, help="also wait for this many workers from other "
                    "machines (started with --worker) before the run")
    ap.add_argument("--master-bind", default="", metavar="HOST[:PORT]", help="address the master listens on for "
                    "workers (default 127.0.0.1 and a free port; use 0.0.0.0:5557 for other machines)")
    ap.add_argument("--worker", default="", metavar="MASTER[:PORT]", help="run only a locust worker for the master "
                    "at MASTER (port 5557 by default); every other option comes from the master")
    ap.add_argument("--root", default="", help="work directory for the generated file set (default: a temporary one)")
    ap.add_argument("--port", type=int, default=0, help="x15g port (default: a free one)")
    ap.add_argument("--server-workers", type=int, default=1, help="x15g --workers (default 1)")
    ap.add_argument("--print-locustfile", action="store_true", help="print the locustfile's path and exit")
    return ap


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops locust and x15g like Ctrl-C does
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = parser().parse_args(argv)
    if args.print_locustfile:
        print(LOCUSTFILE)
        return 0
    try:
        import locust  # noqa: F401  (only to say what is missing; locust runs in subprocesses)
    except ImportError:
        print("x15g-loadtest: locust is not installed: install the loadtest extra (pip install '.[loadtest]'"
              " in the checkout)", file=sys.stderr)
        return 2
    env = dict(args.step or {})
    users = int(env["LOCUST_SPECWEB_STEP_MAX"]) if args.step else args.users
    if args.worker:
        host, port = _host_port(args.worker)
        return subprocess.call(worker_command(host, port, bool(args.step)), env={**os.environ, **env})
    if args.html:
        extra = ["--html", args.html, *extra]
    if args.csv:
        extra = ["--csv", args.csv, *extra]
    from x15g.specweb.fileset import directory_count
    dirs = args.dirs or directory_count(users)
    rate = args.spawn_rate or max(10.0, users / 5)
    server = None
    scratch = None  # a work directory of ours, removed at the end
    host = args.host.rstrip("/")
    if not host:
        if not args.root:
            scratch = tempfile.mkdtemp(prefix="x15g-loadtest-")
        root = Path(args.root or scratch)
        root.mkdir(parents=True, exist_ok=True)
        docroot = make_fileset(root, users, dirs)
        port = args.port or free_port()
        server = start_server(docroot, port, args.server_workers, root / "x15g.log")
        host = "http://127.0.0.1:%d" % port
        print("x15g pid %d on %s, file set D=%d in %s" % (server.pid, host, dirs, docroot), flush=True)
    if args.ui:
        print("locust web UI: http://%s:%d (the SPECweb99 tab; Ctrl-C to stop)" % (args.web_host, args.web_port),
              flush=True)
    try:
        cmd = locust_command(host, users, dirs, args.warmup, args.measure, args.rampdown, rate, args.summary_json,
                             args.ui, extra, args.web_port, args.static_only, bool(args.step), args.web_host)
        bind = _host_port(args.master_bind) if args.master_bind else None
        return run_locust(cmd, args.locust_workers, None, args.expect_workers, bind, env)
    finally:
        if server is not None:
            stop(server)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
