"""`--isolate` over a real x15g process: a WSGI app in handler processes that tries to break out,
kill -9 of a handler mid-request, a hung handler, a crashing one. Runs as root, so the handlers
really run as nobody."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.clients import fetch
from tests.support.docroots import make_docroot
from tests.support.install import readable_runtime
from tests.support.server import APP_ENV, ServerProcess
from tests.support.waiting import wait_for, worker_pids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the isolate user needs the server started as root")

TIMEOUT = 5  # --isolate-timeout


def children(pid: int) -> list[int]:
    """A process's children: the master's worker, the worker's handlers (and its spare)."""
    return worker_pids(pid)


def ready_handlers(server) -> dict[int, int]:
    """pid -> milliseconds it took to be ready, of every handler the worker reported ready."""
    return {int(pid): int(ms) for pid, ms in re.findall(r"isolated handler (\d+) ready, (\d+) ms", server.log())}


def sockets_held(pid: int) -> int:
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
    except OSError:
        pass
    return count


def client_sockets(pid: int) -> int:
    """Sockets a handler holds beside its control socket (two fds: gevent's and the raw one
    its reports go out on): the connections it keeps."""
    return sockets_held(pid) - 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("iso")
    root = make_docroot(base)
    config_dir = base / "conf"
    config_dir.mkdir()
    config = config_dir / "x15g.conf"
    config.write_text("log-level = info\n")
    os.chmod(config, 0o644)  # readable by anyone as far as permissions go: Landlock must stop it
    logs = base / "logs"
    logs.mkdir()
    access_log = logs / "access.log"
    with ServerProcess(root, "--config", str(config), "--wsgi", "tests.isolate.apps:escape", "--isolate",
                       "--isolate-procs", "2", "--isolate-timeout", str(TIMEOUT), "--access-log", str(access_log),
                       env=APP_ENV) as proc:
        proc.config = config
        proc.access_log = access_log
        proc.worker = wait_for(lambda: children(proc.pid) and children(proc.pid)[0])
        wait_for(lambda: len(ready_handlers(proc)) == 2, timeout=30)
        yield proc


def text(server, path: str) -> str:
    status, _, body = fetch(server, path)
    assert status == 200, (path, status, body)
    return body.decode()


def test_handlers_run_as_the_isolate_user(server) -> None:
    uid, gid, pid = text(server, "/whoami").split()
    assert (uid, gid) == ("65534", "65534")
    assert int(pid) in children(server.worker) and int(pid) != server.worker


@pytest.mark.parametrize("attempt", ["shadow", "config", "access_log", "exec", "tcp", "kill_worker", "fork"])
def test_every_escape_fails_and_the_worker_serves_on(server, attempt: str) -> None:
    path = {
        "shadow": "/open?/etc/shadow",
        "config": f"/open?{server.config}",
        "access_log": f"/open?{server.access_log}",
        "exec": "/exec",
        "tcp": f"/tcp?{server.port}",
        "kill_worker": f"/kill?{server.worker}",
        "fork": "/fork",
    }[attempt]
    assert text(server, path).startswith("denied "), attempt
    assert children(server.pid) == [server.worker]  # the same worker, alive
    assert text(server, "/whoami").startswith("65534 ")


def _send(server, path: str) -> socket.socket:
    sock = server.connect(timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def _status_or_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data[9:12]


def test_kill_9_mid_request_costs_that_request_only(server) -> None:
    before = ready_handlers(server)
    handlers = [pid for pid in children(server.worker) if pid in before]
    other = server.http(timeout=20)  # a keep-alive connection that lives through the kill
    other.request("GET", "/whoami")
    assert other.getresponse().read().startswith(b"65534 ")
    # a handler keeps a connection a moment (--isolate-hold) after its answer: `other` is the
    # worker's again once no handler holds a socket beside its control socket
    wait_for(lambda: all(client_sockets(p) == 0 for p in handlers))
    held = _send(server, "/sleep?30")
    with held:
        # the handler that took it holds the client socket beside its control socket
        victim = wait_for(lambda: next((p for p in handlers if client_sockets(p) >= 1), None), timeout=TIMEOUT - 1)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        assert _status_or_close(held) in (b"502", b"")
    for _ in range(5):  # other connections: the survivor (or the new one) answers
        other.request("GET", "/whoami")
        assert other.getresponse().read().startswith(b"65534 ")
    # its replacement: the spare process, given the victim's work, ready well within 1 s
    new = wait_for(lambda: set(ready_handlers(server)) - set(before), timeout=10).pop()
    assert ready_handlers(server)[new] < 1000, "the new handler took more than 1 s to be ready"
    assert time.monotonic() - killed_at < 30 and victim not in children(server.worker)
    assert "killed by signal 9 holding 1 request(s); GET '/sleep?30'" in server.log()
    other.close()


def test_hung_handler_gives_504_after_the_timeout(server) -> None:
    started = time.monotonic()
    with _send(server, "/sleep?60") as held:
        assert _status_or_close(held) == b"504"
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 10
    assert text(server, "/whoami").startswith("65534 ")
    assert "not answered within" in server.log()


def test_bodies_and_pipelined_requests_reach_the_handler(server) -> None:
    """POST bodies travel with the request; a request pipelined after one is answered next."""
    with server.connect(timeout=20) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"
                     b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    first, _, second = data.partition(b"HTTP/1.1 200 OK", )[2].partition(b"HTTP/1.1 ")
    assert first.endswith(b"\r\n\r\nhello world")
    assert second.startswith(b"200 OK") and b"\r\n\r\n65534 " in second


def test_memory_limit_costs_only_that_request(server) -> None:
    status, _, body = fetch(server, "/hog?%d" % (3 << 30))  # above the default 1 GiB address space
    assert status == 500 and b"Traceback" not in body
    assert text(server, "/whoami").startswith("65534 ")
    assert "MemoryError" in server.log()


def test_crashing_handler_gives_502(server) -> None:
    status, _, body = fetch(server, "/crash")
    assert status == 502 and b"Traceback" not in body
    wait_for(lambda: text(server, "/whoami").startswith("65534 "))


def test_handlers_get_only_the_environment_they_are_given(tmp_path) -> None:
    """The server's environment often holds secrets: a handler gets PATH, the locale, the time
    zone and what finds the code, and the names --isolate-env passes; nothing else, X15G_* included."""
    env = dict(APP_ENV, APP_SETTING="for the app", SERVER_SECRET="not for the app", TZ="UTC", X15G_LOG_LEVEL="info")
    with ServerProcess(make_docroot(tmp_path), "--wsgi", "tests.isolate.apps:escape", "--isolate", "--isolate-procs", "1",
                       "--isolate-env", "APP_SETTING", env=env) as server:
        wait_for(lambda: ready_handlers(server), timeout=30)
        assert text(server, "/env?APP_SETTING") == "for the app"
        assert text(server, "/env?TZ") == "UTC"
        assert text(server, "/env?PYTHONPATH") == APP_ENV["PYTHONPATH"]
        for name in ("SERVER_SECRET", "X15G_LOG_LEVEL", "HOME"):
            assert text(server, f"/env?{name}") == "unset", name


def test_with_user_the_handlers_still_take_the_isolate_user(tmp_path) -> None:
    """--user drops each worker to that user right after its fork; the launcher it started
    before (still root) starts its handlers, which take the isolate uid all the same. A killed
    handler is replaced through the launcher, and a stop leaves no process behind."""
    try:
        import pwd

        daemon = pwd.getpwnam("daemon").pw_uid
    except KeyError:
        pytest.skip("no 'daemon' user on this machine")
    base = Path(tempfile.mkdtemp(prefix="x15g-isolate-user-", dir="/tmp"))  # outside pytest's 0700 tree
    os.chmod(base, 0o755)
    command, env = readable_runtime(base / "install")  # x15g as the daemon user can read it
    env["PYTHONPATH"] += os.pathsep + APP_ENV["PYTHONPATH"]  # the app: the handlers reach it through their grants
    server = ServerProcess(make_docroot(tmp_path), "--wsgi", "tests.isolate.apps:escape", "--isolate",
                           "--isolate-procs", "2", "--user", "daemon", "--group", "daemon", env=env)
    server.args[:3] = command  # python -m x15g, from the copy
    with server:
        wait_for(lambda: len(ready_handlers(server)) >= 2, timeout=30)
        worker = children(server.pid)[0]
        assert os.stat(f"/proc/{worker}").st_uid == daemon
        uid, gid, pid = text(server, "/whoami").split()
        assert (uid, gid) == ("65534", "65534")
        launcher = children(worker)[0]  # root: it starts the handlers and reaps them
        assert os.stat(f"/proc/{launcher}").st_uid == 0 and int(pid) in children(launcher)
        everyone = {worker, launcher, *children(launcher)}
        os.kill(int(pid), signal.SIGKILL)

        def answered_by_another() -> bool:
            status, _, body = fetch(server, "/whoami")  # a 502 while it is replaced
            return status == 200 and body.split()[0] == b"65534" and body.split()[2] != pid.encode()

        wait_for(answered_by_another, timeout=10, what="a request answered by another handler")
        everyone |= set(children(launcher))
    shutil.rmtree(base, ignore_errors=True)
    # each worker stopped its handlers and its launcher before it exited
    assert not [p for p in everyone if os.path.exists(f"/proc/{p}")]
