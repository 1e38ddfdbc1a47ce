"""Follow the README's guide for real: every command below must appear verbatim in the guide, and is
then run with a free port for 8000/8080 and a temporary folder for ./public."""

from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tests.support.clients import fetch, fetch_json
from tests.support.server import REPO, ServerProcess, free_port

GUIDE = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent

SERVE = "x15g --root ./public --bind 127.0.0.1:8000 --workers 2"
CHECK = "x15g --config config/production.conf --root ./public --check-config"
PRECOMPRESS = "x15g-precompress ./public --brotli"
CACHE = "x15g --root ./public --bind 127.0.0.1:8000 --cache-control '/assets/*=public, max-age=31536000, immutable' --cache-control '*.html=no-cache'"
FLASK = "x15g --root ./public --bind 127.0.0.1:8000 --wsgi myapp:app"
LOADTEST = "python tools/loadtest_run.py --users 2 --dirs 1 --warmup 1 --measure 3 --rampdown 1"
CURLS = ("curl -i http://127.0.0.1:8000/", "curl http://127.0.0.1:8000/-/health",
         "curl http://127.0.0.1:8000/-/status", "curl http://127.0.0.1:8000/-/metrics")

MYAPP = '''
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "the app\\n"


@app.get("/api/hello")
def hello():
    return {"hello": "world"}
'''


@pytest.mark.parametrize("command", [SERVE, CHECK, PRECOMPRESS, CACHE, FLASK, LOADTEST, "make loadtest", *CURLS])
def test_command_is_in_the_guide(command: str) -> None:
    assert command in GUIDE


def argv(command: str, public: Path, port: int) -> list[str]:
    """The guide's command as this test runs it: real paths, a free port, this venv's programs."""
    words = shlex.split(command.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    words = [str(public) if w == "./public" else w for w in words]
    if words[0].startswith("x15g"):
        words[0] = str(BIN / words[0])  # x15g, x15g-precompress: this venv's console scripts
    elif words[0] == "python":
        words[0] = sys.executable
    return words


class GuideServer(ServerProcess):
    """A guide command run as is (the `x15g` console script) in `cwd`, stopped by its PID."""

    def __init__(self, command: str, public: Path, cwd: Path) -> None:
        super().__init__(public)
        self.args = argv(command, public, self.port)
        self.cwd = cwd

    def start(self, timeout: float = 20.0) -> "GuideServer":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.cwd, stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready(timeout)
        return self


@pytest.fixture
def public(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<h1>welcome</h1>\n" * 40)
    (root / "assets" / "app.1a2b.css").write_text("body { margin: 0 }\n" * 100)
    os.chmod(root, 0o755)
    return root


def test_serve_a_folder_and_read_the_metrics(public: Path, tmp_path: Path) -> None:
    with GuideServer(SERVE, public, tmp_path) as server:
        status, headers, body = fetch(server, "/")  # curl -i http://127.0.0.1:8000/
        assert status == 200 and body == (public / "index.html").read_bytes()
        assert fetch(server, "/-/health")[2] == b"ok\n"
        status_doc = wait_for(lambda: (d := fetch_json(server, "/-/status"))["workers"] == 2 and d, timeout=10)
        assert status_doc["requests"] >= 1 and "per_worker" in status_doc
        metrics = fetch(server, "/-/metrics")[2].decode()
        for name in ("x15g_requests_total", "x15g_request_duration_seconds", "x15g_response_bytes_total",
                     "x15g_response_bodies_total", "x15g_connections_open", "x15g_connections_idle",
                     "x15g_cache_hits_total", "x15g_cache_misses_total", "x15g_cache_entries", "x15g_workers"):
            assert name in metrics and name in GUIDE  # the guide names what the endpoint has


def test_check_the_production_config(public: Path) -> None:
    result = subprocess.run(argv(CHECK, public, 0), cwd=REPO, capture_output=True, text=True, timeout=30)
    if not os.path.isdir("/var/log/x15g"):
        # --check-config opens the logs as the worker user would: without the unit's log
        # directory that fails, in one line naming the config line (issue 13)
        assert result.returncode == 2 and "config/production.conf:" in result.stderr, result.stderr
        import tempfile

        log_dir = Path(tempfile.mkdtemp(prefix="x15g-guide-logs-"))  # pytest's tmp is closed to others
        log_dir.chmod(0o777)  # writable by www-data, which production.conf drops to
        logs = ["--access-log", str(log_dir / "access.log"), "--error-log", str(log_dir / "error.log")]
        try:
            result = subprocess.run(argv(CHECK, public, 0) + logs, cwd=REPO, capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(log_dir)
    assert result.returncode == 0, result.stderr
    assert f"root = {public}" in result.stdout


def test_precompress_then_cache_headers(public: Path, tmp_path: Path) -> None:
    subprocess.run(argv(PRECOMPRESS, public, 0), cwd=REPO, check=True, capture_output=True, timeout=60)
    assert (public / "index.html.gz").exists()
    with GuideServer(CACHE, public, tmp_path) as server:
        status, headers, body = fetch(server, "/assets/app.1a2b.css", headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert gzip.decompress(body) == (public / "assets" / "app.1a2b.css").read_bytes()
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert fetch(server, "/index.html")[1]["cache-control"] == "no-cache"


def test_host_a_flask_app(public: Path, tmp_path: Path) -> None:
    (public / "index.html").unlink()  # let the app answer /
    (tmp_path / "myapp.py").write_text(MYAPP)
    with GuideServer(FLASK, public, tmp_path) as server:  # run from the app's directory
        assert fetch(server, "/")[2] == b"the app\n"
        assert fetch_json(server, "/api/hello") == {"hello": "world"}
        assert fetch(server, "/assets/app.1a2b.css")[0] == 200  # the static file wins


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_behind_nginx(public: Path, tmp_path: Path) -> None:
    """The guide's nginx block, minus TLS (no certificate here), in front of x15g."""
    block = re.search(r"```nginx\n(.*?)```", GUIDE, re.S).group(1)
    front = free_port()
    with GuideServer(SERVE, public, tmp_path) as server:
        conf = block.replace("127.0.0.1:8080", f"127.0.0.1:{server.port}").replace("listen 443 ssl;", f"listen 127.0.0.1:{front};")
        conf = "\n".join(line for line in conf.splitlines() if "ssl_" not in line and "http2" not in line)
        (tmp_path / "nginx.conf").write_text(
            f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\nevents {{}}\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path};\nproxy_temp_path {tmp_path};\n{conf}\n}}\n")
        nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proxy = ServerProcess(public)
            proxy.port = front
            proxy.proc = nginx
            proxy.wait_ready(10)
            status, _, body = fetch(proxy, "/")
            assert status == 200 and body == (public / "index.html").read_bytes()
            assert fetch(proxy, "/-/status")[0] == 403  # blocked at the proxy
            assert fetch(server, "/-/status")[0] == 200  # still there on loopback
        finally:
            nginx.terminate()
            nginx.wait(10)


def test_run_the_load_test() -> None:
    started = time.monotonic()
    result = subprocess.run(argv(LOADTEST, Path("."), 0), cwd=REPO, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert time.monotonic() - started < 150
    assert "loadtest:" in (REPO / "Makefile").read_text()
