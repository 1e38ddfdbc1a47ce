"""The open-file cache keeps the files in use fresh off the request path, and still notices a
change within its revalidation window (real server, real client)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.support.clients import fetch
from tests.support.server import ServerProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.process

PERIOD = 0.4  # --cache-revalidate: the refresher runs every 0.1 s


def metric(server: ServerProcess, name: str) -> float:
    text = fetch(server, "/-/metrics")[2].decode()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} missing from /-/metrics"
    return float(match.group(1))


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"old\n")
    (root / "big.bin").write_bytes(os.urandom(256 * 1024))  # sent by sendfile
    with ServerProcess(root, "--cache-revalidate", str(PERIOD)) as proc:
        yield proc


def test_files_in_use_are_revalidated_ahead_and_a_change_is_still_seen(server: ServerProcess) -> None:
    conn = server.http()
    big = (Path(server.root) / "big.bin").read_bytes()
    try:
        deadline = time.monotonic() + 4 * PERIOD  # several windows, bounded in requests too
        for _ in range(20_000):
            if time.monotonic() > deadline:
                break
            for path, expected in (("/hello.txt", b"old\n"), ("/big.bin", big)):
                conn.request("GET", path)
                response = conn.getresponse()
                assert response.status == 200 and response.read() == expected
    finally:
        conn.close()
    # Both entries stayed in use: the refresher revalidated them ahead of their windows.
    wait_for(lambda: metric(server, "x15g_cache_refreshes_total") >= 4, 10, what="refreshes published")

    (Path(server.root) / "hello.txt").write_bytes(b"new content\n")
    started = time.monotonic()
    seen = wait_for(lambda: fetch(server, "/hello.txt")[2] == b"new content\n", 10, what="the change served")
    assert seen
    # Seen within about one window (the bound is loose for a loaded machine, not a measurement).
    assert time.monotonic() - started < 5
