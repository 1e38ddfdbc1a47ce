"""systemd (issue 13): the shipped units verify, and x15g runs the way x15g.service runs it.

- `systemd-analyze verify` accepts config/x15g.service and config/x15g.socket without a warning
  (ExecStart= pointed at this venv, since the unit names /opt/x15g).
- x15g started with config/production.conf as shipped (only paths and the port redirected to temp
  ones), a log directory owned by the worker user as `LogsDirectory=` with `User=` makes it, and a
  `$NOTIFY_SOCKET` this test listens on: the `ExecStartPre=` check passes, READY=1 comes once the
  workers serve, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM, STATUS= lines
  throughout; the logs are written by the worker user. Run as the unit's `User=www-data` when this
  interpreter is reachable by www-data, and as root dropping to www-data (production.conf's
  `user`/`group`) always.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.support.clients import get
from tests.support.install import readable_runtime
from tests.support.server import REPO, free_port
from tests.support.waiting import wait_for, wait_workers, worker_pids

UNITS = ("x15g.service", "x15g.socket")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (Debian: apt install systemd)")
def test_units_verify(tmp_path: Path) -> None:
    for name in UNITS:
        text = (REPO / "config" / name).read_text().replace("/opt/x15g/venv/bin/x15g", str(Path(sys.executable).parent / "x15g"))
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *[str(tmp_path / n) for n in UNITS]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_unit_settings_match_the_config() -> None:
    """The stop timeout covers the drain, and the unit's user is the one production.conf names."""
    unit = (REPO / "config" / "x15g.service").read_text()
    conf = (REPO / "config" / "production.conf").read_text()
    settings = dict(line.split(" = ", 1) for line in conf.splitlines() if " = " in line and not line.startswith("#"))
    graceful = float(settings["graceful-timeout"].rstrip("s"))
    stop = float(next(line for line in unit.splitlines() if line.startswith("TimeoutStopSec=")).split("=")[1])
    assert stop > graceful + 5  # the master SIGKILLs leftovers 5 s after the graceful timeout
    assert f"User={settings['user']}" in unit and f"Group={settings['group']}" in unit
    for option in ("Type=notify", "LogsDirectory=x15g", "ExecStartPre=", "--check-config", "ProtectSystem=strict",
                   "ProtectHome=true", "PrivateDevices=true", "ProtectKernelTunables=true", "RestrictAddressFamilies=",
                   "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "SystemCallFilter=@system-service"):
        assert option in unit


class NotifyListener:
    """The service manager's end of sd_notify: a datagram socket collecting messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def has(self, key: str, after: int = 0) -> bool:
        return any(key in m for m in self.messages[after:])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def _reachable_by(user: str, path: str) -> bool:
    """Whether `user` may execute `path` (every directory on the way included)."""
    entry = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os._exit(0 if os.access(os.path.realpath(path), os.X_OK) else 1)
        finally:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the unit's user-owned directories")
@pytest.mark.parametrize("as_user", [False, True], ids=["root-drops-to-www-data", "User=www-data"])
def test_runs_like_the_unit(as_user: bool) -> None:
    if as_user and not _reachable_by("www-data", sys.executable):
        pytest.skip(f"www-data cannot execute this interpreter ({os.path.realpath(sys.executable)}): "
                    "systemd's User= needs an installation it can reach, such as /opt/x15g/venv")
    www = pwd.getpwnam("www-data")
    base = Path(tempfile.mkdtemp(prefix="x15g-unit-"))  # pytest's tmp tree is closed to www-data
    try:
        base.chmod(0o755)
        root, logs, run = base / "srv", base / "log", base / "run"
        root.mkdir()
        (root / "hello.txt").write_bytes(b"hello, world\n")
        for directory in (logs, run):  # LogsDirectory= / RuntimeDirectory= with User=www-data
            directory.mkdir(mode=0o755)
            os.chown(directory, www.pw_uid, www.pw_gid)
        notify = NotifyListener(base / "notify.sock")
        port = free_port()
        args = ["--config", str(REPO / "config" / "production.conf"), "--root", str(root), "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--pid-file", str(run / "x15g.pid"), "--access-log", str(logs / "access.log"),
                "--error-log", str(logs / "error.log")]
        if as_user:
            command, runtime_env = [sys.executable, "-m", "x15g"], {"PYTHONPATH": str(REPO)}
        else:  # the workers drop to www-data: run from a copy it can read, as an install would be
            command, runtime_env = readable_runtime(base / "install")
        env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), **runtime_env)
        user = {"user": "www-data", "group": "www-data", "extra_groups": []} if as_user else {}
        check = subprocess.run([*command, *args, "--check-config"], capture_output=True, text=True,
                               env=env, cwd=base, timeout=60, **user)  # ExecStartPre=
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=env, cwd=base, start_new_session=True, **user)
        try:
            assert wait_for(lambda: notify.has("READY"), 20), (logs / "error.log").read_text()
            ready = notify.messages[-1]
            assert ready.get("MAINPID") == str(proc.pid) and "serving with 2 of 2 workers" in ready.get("STATUS", "")
            assert get(port, "/hello.txt") == (200, b"hello, world\n")
            old = set(wait_workers(proc.pid, 2))
            for pid in old:
                uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
                assert uids.split()[1:] == [str(www.pw_uid)] * 4
            seen = len(notify.messages)
            os.kill(proc.pid, signal.SIGHUP)
            assert wait_for(lambda: notify.has("RELOADING", seen) and notify.has("READY", seen + 1), 20)
            assert wait_for(lambda: not set(worker_pids(proc.pid)) & old, 20)
            seen = len(notify.messages)
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(30) == 0
            assert notify.has("STOPPING", seen)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            notify.close()
        for name in ("access.log", "error.log"):
            assert (logs / name).stat().st_uid == www.pw_uid  # created by the worker user (preflight)
        assert '"path":"/hello.txt"' in (logs / "access.log").read_text()  # JSON lines, as configured
        assert "master" in (logs / "error.log").read_text()
        assert not (run / "x15g.pid").exists()
    finally:
        shutil.rmtree(base)


def test_notifier_speaks_sd_notify(tmp_path: Path) -> None:
    """One datagram of KEY=VALUE lines, to a path or an abstract (@) address; a no-op without one."""
    from x15g.server.notify import Notifier

    assert Notifier({}).send("READY=1") is False
    path = tmp_path / "n.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind(f"\0x15g-test-{os.getpid()}")
    try:
        env = {"NOTIFY_SOCKET": str(path), "OTHER": "1"}
        notifier = Notifier(env)
        assert env == {"OTHER": "1"}  # children (CGI) cannot notify on our behalf
        notifier.reloading("reloading")
        lines = listener.recv(4096).decode().splitlines()
        assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=") and lines[2] == "STATUS=reloading"
        Notifier({"NOTIFY_SOCKET": f"@x15g-test-{os.getpid()}"}).stopping("bye")
        assert abstract.recv(4096) == b"STOPPING=1\nSTATUS=bye"
    finally:
        listener.close()
        abstract.close()
