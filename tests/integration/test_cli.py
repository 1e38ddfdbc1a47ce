"""The `x15g` command as a user runs it: start-up errors, entry points, binds."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, free_port


def run_x15g(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "x15g", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, message", [
    (["--workers", "abc"], "--workers"),
    (["--root", "/nonexistent/x15g-root"], "is not a directory"),
    (["--bind", "localhost"], "--bind"),
    (["--user", "no-such-user-x15g"], "no such user"),
])
def test_bad_configuration_is_one_line_and_exit_2(docroot: Path, args: list[str], message: str) -> None:
    result = run_x15g("--root", str(docroot), *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_exit_2(docroot: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_x15g("--root", str(docroot), "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert "address already in use" in result.stderr and result.stderr.count("\n") == 1


def test_help_and_version() -> None:
    result = run_x15g("--help")
    assert result.returncode == 0 and "X15G_MAX_CONNECTIONS" in result.stdout
    version = run_x15g("--version")
    assert version.returncode == 0 and version.stdout.startswith("x15g ")


def test_console_script_and_config_file(docroot: Path, tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "x15g.conf"
    conf.write_text(f"root = {docroot}\nbind = 127.0.0.1:{port}\nworkers = 1\n")
    exe = Path(sys.executable).parent / "x15g"
    proc = subprocess.Popen([str(exe), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = ServerProcess(docroot)
        server.port, server.proc = port, proc
        server.wait_ready(20)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/hello.txt")
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_ipv6_and_unix_binds(docroot: Path, tmp_path: Path) -> None:
    path = tmp_path / "x15g.sock"
    port = free_port()
    with ServerProcess(docroot, "--bind", f"unix:{path}", "--bind", f"[::1]:{port}"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello, world\n")
        try:
            six = socket.create_connection(("::1", port), timeout=5)
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        with six:
            six.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert six.recv(4096).startswith(b"HTTP/1.1 200")


def test_libuv_loop_serves(docroot: Path) -> None:
    pytest.importorskip("_cffi_backend", reason="--loop libuv needs cffi (the libuv extra)")
    with ServerProcess(docroot, "--loop", "libuv") as proc:
        conn = proc.http()
        conn.request("GET", "/big.bin")
        assert conn.getresponse().read() == (docroot / "big.bin").read_bytes()
