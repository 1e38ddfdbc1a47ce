"""The hung-request watchdog (--timeout) and worker recycling (--max-requests), through a real
x15g process with a real WSGI app."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.clients import fetch, fetch_json
from tests.support.server import APP_ENV, ServerProcess
from tests.support.waiting import wait_for


def _pid(server: ServerProcess) -> int:
    return fetch_json(server, "/env")["pid"]


def test_a_cpu_bound_request_is_logged_and_its_worker_replaced(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", "--timeout", "1", "--workers", "2",
                       env=APP_ENV) as server:
        conn = server.http(timeout=30)
        conn.request("GET", "/spin?60")  # would hold its worker's hub for a minute
        wait_for(lambda: "event loop held" in server.log(), timeout=20)
        assert "by GET '/spin?60'" in server.log()
        wait_for(lambda: "exited with status 70" in server.log(), timeout=10)
        conn.close()
        # the master replaced it; every request is answered again
        for _ in range(6):
            assert fetch(server, "/env")[0] == 200


def test_max_requests_recycles_the_worker_without_losing_a_request(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", "--max-requests", "20",
                       "--max-requests-jitter", "5", env=APP_ENV) as server:
        first = _pid(server)
        answered = []

        def recycled() -> bool:
            status, _, body = fetch(server, "/env")  # raises if a request is lost
            answered.append(status)
            return json.loads(body)["pid"] != first

        wait_for(recycled, timeout=20, interval=0.02)
        assert set(answered) == {200} and len(answered) >= 20
        assert "served" in server.log() and "recycling" in server.log()
        assert "Traceback" not in server.log()


def test_a_replaced_worker_loses_only_the_hung_requests_access_log_line(docroot: Path, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", "--timeout", "1", "--access-log", str(access),
                       env=APP_ENV) as server:
        stalled = fetch_json(server, "/env")["pid"]
        conn = server.http(timeout=30)  # one connection: every request reaches that worker
        for i in range(20):
            conn.request("GET", f"/env?n={i}")
            assert conn.getresponse().read()
        conn.request("GET", "/spin?60")  # within a second of the last answers: still buffered
        wait_for(lambda: "exited with status 70" in server.log(), timeout=20)
        conn.close()
        assert fetch_json(server, "/env")["pid"] != stalled
        lines = access.read_text().splitlines()
        for i in range(20):
            assert sum(f"/env?n={i} " in line for line in lines) == 1, f"line of request {i} lost or doubled"
        assert not any("/spin" in line for line in lines)
