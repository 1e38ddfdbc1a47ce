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
