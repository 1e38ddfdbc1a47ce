"""`--pid-file` and `--check-config` through the real `x15g` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import fetch
from tests.support.server import REPO, ServerProcess


def run_x15g(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "x15g", *args], capture_output=True, text=True, timeout=30,
                          cwd=cwd, env=dict(os.environ, **(env or {})))


def test_pid_file_names_the_master_and_is_removed(docroot: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "x15g.pid"
    server = ServerProcess(docroot, "--pid-file", str(pid_file), workers=2)
    with server:
        assert pid_file.read_text() == f"{server.pid}\n"
        assert fetch(server, "/hello.txt")[0] == 200
        os.kill(int(pid_file.read_text()), signal.SIGTERM)  # what `kill $(cat pidfile)` does
        assert server.proc.wait(15) == 0
    assert not pid_file.exists()


def test_check_config_prints_resolved_settings(docroot: Path, tmp_path: Path) -> None:
    conf = tmp_path / "x15g.conf"
    conf.write_text(f"root = {docroot}\nworkers = 3\ncache-control = [*.css=max-age=60]\n")
    result = run_x15g("--config", str(conf), "--check-config", "--bind", "127.0.0.1:9", env={"X15G_LOG_LEVEL": "debug"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in (f"root = {docroot}", "workers = 3", "bind = 127.0.0.1:9", "log-level = debug",
                     "cache-control = *.css=max-age=60", "admin-prefix = /-/"):
        assert expected in lines
    # nothing was started: the port is free and no process lingers
    assert "serving" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (("--root", "/no/such/dir"), "is not a directory"),
    (("--workers", "-1"), "--workers"),
    (("--wsgi", "nocolon"), "MODULE:CALLABLE"),
    (("--admin-prefix", "status"), "must start and end with /"),
])
def test_check_config_rejects_bad_values_with_one_line(docroot: Path, args: tuple[str, ...], message: str) -> None:
    result = run_x15g("--root", str(docroot), *args, "--check-config")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_sample_production_config_checks(docroot: Path, tmp_path: Path) -> None:
    """config/production.conf resolves (with the root and log paths pointed at temp dirs)."""
    result = run_x15g("--config", str(REPO / "config" / "production.conf"), "--root", str(docroot),
                      "--access-log", str(tmp_path / "access.log"), "--error-log", str(tmp_path / "error.log"),
                      "--pid-file", str(tmp_path / "pid"), "--user", "", "--group", "", "--check-config")
    assert result.returncode == 0, result.stderr
    assert "access-log-format = json" in result.stdout
    assert "cache-control = /assets/*=public, max-age=31536000, immutable" in result.stdout.splitlines()


@pytest.mark.parametrize("args, message", [
    (("--user", "no-such-user-x15g"), "argument --user: --user 'no-such-user-x15g': no such user"),
    (("--wsgi", "nosuch_module_x15g:app"), "argument --wsgi: --wsgi 'nosuch_module_x15g:app': "),
    (("--wsgi", "tests.ops.import_fails:app"), "importing it failed: RuntimeError: this application cannot start"),
    (("--specweb", "--specweb-state", "/nonexistent/x15g-state"), "argument --specweb-state: --specweb-state "
                                                                  "'/nonexistent/x15g-state' is not a directory"),
])
def test_check_config_rejects_what_a_start_rejects(docroot: Path, args: tuple[str, ...], message: str) -> None:
    # a start only locates a WSGI module (its workers import it, and back off if that fails)
    modes = [("--check-config",)] + ([] if "import_fails" in args[1] else [()])
    for mode in modes:
        result = run_x15g("--root", str(docroot), "--bind", "127.0.0.1:0", *args, *mode, cwd=REPO)
        assert result.returncode == 2, (mode, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check files as another user")
def test_log_not_writable_by_the_worker_user_is_a_config_error(docroot: Path) -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="x15g-logs-"))  # pytest's tmp_path is closed to other users
    base.chmod(0o755)
    logs = base / "logs"
    logs.mkdir(mode=0o700)  # root's only, as LogsDirectory= without User= makes it
    try:
        _check_log_dir(docroot, logs)
    finally:
        shutil.rmtree(base)


def _check_log_dir(docroot: Path, logs: Path) -> None:
    for mode in (("--check-config",), ()):
        result = run_x15g("--root", str(docroot), "--bind", "127.0.0.1:0", "--user", "nobody",
                          "--access-log", str(logs / "access.log"), *mode)
        assert result.returncode == 2, result.stderr
        assert (f"argument --access-log: --access-log: '{logs}/access.log' cannot be opened for writing by user "
                f"nobody: Permission denied") in result.stderr
    os.chown(logs, 65534, 65534)
    result = run_x15g("--root", str(docroot), "--user", "nobody", "--access-log", str(logs / "access.log"), "--check-config")
    assert result.returncode == 0, result.stderr
    assert (logs / "access.log").stat().st_uid == 65534  # created as a worker would
