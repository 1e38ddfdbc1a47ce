"""The servers of tools/bench: how each one is started on a loopback port, checked and stopped.

Every server runs in its own session (process group) pinned to one CPU with taskset, logs to a file
in the run's temporary directory, and is stopped by its process group id, so nothing outlives the
benchmark, even on Ctrl-C.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from loadtests.cli import wait_accepting
from tests.support.clients import get
from tests.support.server import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
ALL_SERVERS = ("x15g", "nginx", "pywsgi", "pywsgi-nodelay", "granian", "gunicorn", "bjoern", "waitress")
# Servers that host a WSGI app (the app scenarios); the others only serve the static root.
APP_SERVERS = ("x15g", "granian", "gunicorn", "bjoern", "waitress")
INSTALL_HINT = ("install it with: sudo tools/install-bench-deps.sh (apt-get install -y wrk nginx; "
                "pip install granian gunicorn waitress bjoern)")


class Unavailable(Exception):
    """A server that cannot run here (not installed, failed to start, wrong answers): skipped."""


@dataclass
class Context:
    """What every server command needs: the document root, a scratch directory, extra args."""

    root: str
    tmp: str
    server_cpu: str | None
    x15g_args: list[str] = field(default_factory=list)
    app: str | None = None  # MODULE:NAME under tools/peers for the app scenarios, else static files


@dataclass
class Running:
    """A started server: its name, port, process (its pid is its process group id) and log."""

    name: str
    port: int
    proc: subprocess.Popen
    log_path: str


def find_tool(name: str) -> str | None:
    """Path of a system tool, also looking in sbin (nginx lives there and root's PATH may lack it)."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)), None)


def _venv_tool(name: str) -> str:
    path = os.path.join(VENV_BIN, name)
    if not os.access(path, os.X_OK):
        raise Unavailable(f"{name} is not installed in .venv; {INSTALL_HINT}")
    return path


def nginx_conf(ctx: Context, port: int) -> str:
    """nginx configured like x15g: one worker, sendfile, no access log, open-file cache revalidated
    once a second (x15g's cache_revalidate default), same backlog."""
    prefix = os.path.join(ctx.tmp, "nginx")
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temp root
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 20000; }}
http {{
    default_type text/plain;
    types {{ text/html html; application/octet-stream bin; }}
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 1s;
    open_file_cache_errors on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        root {ctx.root};
    }}
}}
"""


def server_command(name: str, ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment to start server `name` on 127.0.0.1:`port`; Unavailable if absent."""
    bind = f"127.0.0.1:{port}"
    env = {"X15G_BENCH_ROOT": ctx.root, "PYTHONPATH": PEERS}
    if ctx.app is not None:
        return app_server_command(name, ctx, port, ctx.app)
    if name in ("bjoern", "waitress"):
        raise Unavailable(f"{name} runs only in the app scenarios (wsgi, flask)")
    if name == "x15g":
        return [_venv_tool("x15g"), "--root", ctx.root, "--bind", bind, "--workers", "1", *ctx.x15g_args], {}
    if name == "nginx":
        nginx = find_tool("nginx")
        if nginx is None:
            raise Unavailable(f"nginx is not installed; {INSTALL_HINT}")
        prefix = os.path.join(ctx.tmp, "nginx")
        os.makedirs(prefix, exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(ctx, port))
        return [nginx, "-p", prefix + "/", "-c", conf, "-e", os.path.join(prefix, "error.log")], {}
    if name in ("pywsgi", "pywsgi-nodelay"):
        nodelay = ["--nodelay"] if name == "pywsgi-nodelay" else []
        python = os.path.join(VENV_BIN, "python")
        return [python if os.access(python, os.X_OK) else sys.executable, os.path.join(PEERS, "pywsgi_static.py"), "--root", ctx.root, "--bind", bind,
                *nodelay], {}
    if name == "gunicorn":
        return [_venv_tool("gunicorn"), "-k", "gevent", "-w", "1", "-b", bind, "--backlog", "2048",
                "--keep-alive", "75", "--chdir", PEERS, "static_wsgi:app"], env
    if name == "granian":
        return [_venv_tool("granian"), "--interface", "wsgi", "--http", "1", "--no-ws", "--workers", "1",
                "--host", "127.0.0.1", "--port", str(port), "--backlog", "2048", "--no-access-log",
                "--working-dir", PEERS, "static_wsgi:app"], env
    raise Unavailable(f"unknown server {name!r} (known: {', '.join(ALL_SERVERS)})")


def app_server_command(name: str, ctx: Context, port: int, app: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment to host WSGI app `app` (MODULE:NAME in tools/peers) with one worker."""
    bind = f"127.0.0.1:{port}"
    env = {"PYTHONPATH": PEERS}
    python = os.path.join(VENV_BIN, "python")
    if name == "x15g":
        return [_venv_tool("x15g"), "--root", ctx.root, "--bind", bind, "--workers", "1", "--wsgi", app,
                *ctx.x15g_args], env
    if name == "granian":
        return [_venv_tool("granian"), "--interface", "wsgi", "--http", "1", "--no-ws", "--workers", "1",
                "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(port), "--backlog", "2048",
                "--no-access-log", "--working-dir", PEERS, app], env
    if name == "gunicorn":
        return [_venv_tool("gunicorn"), "-k", "gevent", "-w", "1", "-b", bind, "--backlog", "2048",
                "--keep-alive", "75", "--chdir", PEERS, app], env
    if name == "waitress":
        return [_venv_tool("waitress-serve"), "--listen", bind, "--threads", "4", "--backlog", "2048", app], env
    if name == "bjoern":
        if subprocess.run([python, "-c", "import bjoern"], capture_output=True).returncode != 0:
            raise Unavailable(f"bjoern is not installed in .venv; {INSTALL_HINT}")
        return [python, os.path.join(PEERS, "bjoern_app.py"), "--bind", bind, "--app", app], env
    raise Unavailable(f"{name} is not a WSGI server")


def pin(cpu: str | None) -> list[str]:
    """The taskset prefix that pins a command to `cpu`, or nothing when unpinned/unavailable."""
    taskset = find_tool("taskset")
    return [taskset, "-c", cpu] if cpu is not None and taskset else []


def start_server(name: str, ctx: Context, timeout: float = 15.0) -> Running:
    """Start `name` in its own process group and wait until its port accepts connections."""
    port = free_port()
    argv, extra_env = server_command(name, ctx, port)
    log_path = os.path.join(ctx.tmp, f"{name}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(pin(ctx.server_cpu) + argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **extra_env},
                                start_new_session=True)
    running = Running(name, port, proc, log_path)
    if wait_accepting(proc, port, timeout):
        return running
    if proc.poll() is not None:
        raise Unavailable(f"{name} exited with status {proc.returncode} at start:\n{log_tail(log_path)}")
    stop_server(running)
    raise Unavailable(f"{name} did not accept connections within {timeout:.0f}s:\n{log_tail(log_path)}")


def log_tail(path: str, lines: int = 8) -> str:
    """The last lines of a server log, indented, for error messages."""
    try:
        with open(path, "rb") as f:
            text = f.read()[-4000:].decode("utf-8", "replace")
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (empty log)"


REVALIDATE = {"If-None-Match": "<the server's ETag>"}  # check_answers: expect a 304, not the bytes


def etag_of(port: int, path: str, timeout: float = 5.0) -> str:
    """The ETag a server sends for `path` (raises ValueError when it sends none)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("HEAD", path)
        resp = conn.getresponse()
        resp.read()
        etag = resp.getheader("ETag")
    finally:
        conn.close()
    if not etag:
        raise ValueError(f"no ETag for {path}")
    return etag


def check_revalidation(port: int, path: str) -> str | None:
    """GET `path` with If-None-Match set to its own ETag: None when the answer is an empty 304."""
    try:
        status, body = get(port, path, headers={"If-None-Match": etag_of(port, path)})
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"GET {path} with If-None-Match: {exc!r}"
    if status != 304 or body:
        return f"GET {path} with If-None-Match: status {status}, {len(body)} bytes (expected an empty 304)"
    return None


def check_answers(running: Running, root: str, paths: list[str], headers: dict[str, str] | None = None) -> str | None:
    """GET each path and compare with the file's bytes; None when all match, else what is wrong.
    With `headers` REVALIDATE, each path must instead be answered 304 to its own ETag."""
    if not paths:
        return "nothing to check"
    if headers is REVALIDATE:
        return next(filter(None, (check_revalidation(running.port, path) for path in paths)), None)
    for path in paths:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            expected = f.read()
        try:
            status, body = get(running.port, path, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            return f"GET {path}: {exc!r}"
        if status != 200 or body != expected:
            return f"GET {path}: status {status}, {len(body)} bytes (expected 200, {len(expected)} bytes)"
    return None


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group `pgid`."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields: state ppid pgrp session ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def stop_server(running: Running, grace: float = 5.0) -> None:
    """Stop a server by its process group: SIGTERM, then SIGKILL after `grace` seconds."""
    pgid = running.proc.pid  # start_new_session made the server its own group leader
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            running.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no child of the group (e.g. a worker) lingers
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
