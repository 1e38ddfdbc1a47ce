"""systemd socket activation: a launcher binds the socket and execs x15g with LISTEN_FDS and
LISTEN_PID set to x15g's own PID (exec keeps the PID), as systemd does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tests.support.clients import fetch, fetch_json
from tests.support.server import ServerProcess, free_port
from x15g.server.activation import listen_fds

# The launcher: move the socket to fd 3, set the variables, exec x15g (same PID as the launcher).
LAUNCH = """import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=sys.argv[2] or str(os.getpid()))
os.execv(sys.argv[3], sys.argv[3:])
"""


class ActivatedServer(ServerProcess):
    """x15g started like systemd would: the listening socket arrives as fd 3."""

    def __init__(self, root: Path, listener: socket.socket, *args: str, workers: int = 1, pid: str = "") -> None:
        super().__init__(root, *args, workers=workers)
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.args = [sys.executable, "-c", LAUNCH, str(listener.fileno()), pid, sys.executable, "-m", "x15g", "--root", str(root),
                     "--workers", str(workers), *args]

    def start(self, timeout: float = 20.0) -> "ActivatedServer":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     pass_fds=(self.listener.fileno(),))
        self.wait_ready(timeout)
        return self


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_serves_on_the_passed_socket_and_ignores_bind(docroot: Path, listener: socket.socket, workers: int) -> None:
    unused = free_port()
    with ActivatedServer(docroot, listener, "--bind", f"127.0.0.1:{unused}", workers=workers) as server:
        status, _, body = fetch(server, "/hello.txt")
        assert (status, body) == (200, b"hello, world\n")
        with pytest.raises(OSError):  # --bind was not used
            socket.create_connection(("127.0.0.1", unused), timeout=2).close()
        wait_for(lambda: fetch_json(server, "/-/status")["workers"] == workers, timeout=10)
        assert f"127.0.0.1:{server.port}" in server.log()


def test_a_stop_leaves_the_passed_socket_taking_connections(docroot: Path, listener: socket.socket) -> None:
    """systemd keeps the socket across restarts: the stop must not make it refuse connections
    (the SYN filter a stop puts on x15g's own sockets), and what queues meanwhile is served next."""
    with ActivatedServer(docroot, listener, workers=2) as server:
        assert fetch(server, "/hello.txt")[0] == 200
    waiting = socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5)  # queued in the kernel
    waiting.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with ActivatedServer(docroot, listener, workers=1) as again:
        assert fetch(again, "/hello.txt")[0] == 200
        waiting.settimeout(10)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200 ")
    waiting.close()


def test_variables_for_another_pid_are_ignored(docroot: Path, listener: socket.socket) -> None:
    port = free_port()
    server = ActivatedServer(docroot, listener, "--bind", f"127.0.0.1:{port}", pid="1")
    server.port = port  # x15g binds --bind itself
    with server:
        assert fetch(server, "/hello.txt")[0] == 200


def test_listen_fds_checks_pid_and_cleans_the_environment() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1)}
    assert listen_fds(env) == [] and "LISTEN_FDS" in env
    assert listen_fds({"LISTEN_FDS": "x", "LISTEN_PID": "y"}) == []
    a, b = socket.socketpair()
    saved = os.dup(3) if _fd_open(3) else None
    try:
        os.dup2(a.fileno(), 3)
        env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid()), "LISTEN_FDNAMES": "web", "OTHER": "1"}
        sockets = listen_fds(env)
        assert len(sockets) == 1 and sockets[0].family == socket.AF_UNIX
        assert env == {"OTHER": "1"}
        sockets[0].detach()
    finally:
        if saved is not None:
            os.dup2(saved, 3)
            os.close(saved)
        else:
            os.close(3)
        a.close()
        b.close()


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
