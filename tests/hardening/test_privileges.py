"""Running as root (issue 6): --user/--group drop privileges after binding, and a world-writable
document root is refused unless --allow-world-writable-root.

The privilege test binds a port below 1024 (only root may) and then checks, in /proc, that every
worker runs as nobody/nogroup with no supplementary groups, that a root-only file inside the
document root is refused (the drop is real), and that a replacement worker drops too. x15g runs
from a world-readable copy of its runtime (tests/support/install.py), as it would be installed,
so the test passes from a checkout that `nobody` cannot enter (a 0700 home or mktemp -d).
"""

from __future__ import annotations

import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.waiting import wait_for, wait_workers, worker_pids
from tests.support.clients import get
from tests.support.install import readable_runtime
from tests.support.server import ServerProcess

NOBODY = 65534


def _ids(pid: int) -> dict[str, list[int]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Uid", "Gid", "Groups"):
            fields[name] = [int(v) for v in value.split()]
    return fields


def _privileged_port() -> int:
    for port in range(700, 1000):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port below 1024")


@pytest.fixture
def world_base():
    """A directory outside pytest's 0700 tmp tree, so user nobody can reach what is in it."""
    base = tempfile.mkdtemp(prefix="x15g-priv-", dir="/tmp")
    os.chmod(base, 0o755)
    yield Path(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def world_root(world_base: Path) -> Path:
    """The document root, readable by nobody, with one file only root may read."""
    root = world_base / "root"
    root.mkdir(mode=0o755)
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "rootonly.txt").write_bytes(b"root only\n")
    os.chmod(root / "hello.txt", 0o644)
    os.chmod(root / "rootonly.txt", 0o600)
    return root


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_group_drop_after_binding_a_privileged_port(world_base: Path, world_root: Path) -> None:
    port = _privileged_port()
    command, env = readable_runtime(world_base / "install")
    server = ServerProcess(world_root, "--user", "nobody", "--group", "nogroup", workers=2,
                           bind=f"127.0.0.1:{port}", env=env)
    server.args[:3] = command  # python -m x15g, from the copy
    server.port = port  # wait_ready polls this port
    with server:
        workers = wait_workers(server.pid, 2)
        for pid in workers:  # a worker just forked may not have reached the drop yet
            assert wait_for(lambda: _ids(pid)["Uid"][0] == NOBODY, 5), _ids(pid)
            ids = _ids(pid)
            assert ids["Uid"] == [NOBODY] * 4 and ids["Gid"] == [NOBODY] * 4 and ids["Groups"] == [], ids
        assert _ids(server.pid)["Uid"][0] == 0  # the master keeps root to respawn on the bound port
        assert get(port, "/hello.txt") == (200, b"hello, world\n")
        assert get(port, "/rootonly.txt")[0] == 403  # root could read it: the drop is real
        os.kill(workers[0], signal.SIGKILL)
        wait_workers(server.pid, 2, exclude={workers[0]})
        for pid in worker_pids(server.pid):
            assert wait_for(lambda: _ids(pid)["Uid"] == [NOBODY] * 4, 5), _ids(pid)


def test_world_writable_root_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "open"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    root.chmod(0o777)
    done = subprocess.run([sys.executable, "-m", "x15g", "--root", str(root), "--bind", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode != 0 and "world-writable" in done.stderr
    with ServerProcess(root, "--allow-world-writable-root") as server:
        assert get(server.port, "/hello.txt") == (200, b"hello, world\n")
