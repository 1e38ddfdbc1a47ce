"""Small helpers shared by the ops tests: HTTP through http.client, waiting for a condition."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from tests.serverproc import REPO, ServerProcess

APP_ENV = {"PYTHONPATH": str(REPO)}


def fetch(server: ServerProcess, path: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-case headers, body)."""
    conn = server.http()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def fetch_json(server: ServerProcess, path: str, **kwargs: Any) -> Any:
    status, _, body = fetch(server, path, **kwargs)
    assert status == 200, body
    return json.loads(body)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
