"""The admin responder and the metrics module without a server: loopback rule, draining health,
histogram buckets, aggregation and the run directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from x15g.app.admin import AdminResponder, is_loopback
from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.messages import Request
from x15g.observability import metrics


def _request(path: bytes, peer: str = "127.0.0.1:5000", method: str = "GET") -> Request:
    return Request(method, path, path, b"", 11, {b"host": b"x"}, True, peer=peer)


@pytest.mark.parametrize("peer, loopback", [
    ("127.0.0.1:80", True), ("127.9.8.7:1", True), ("[::1]:8080", True), ("[::ffff:127.0.0.1]:1", True),
    ("10.0.0.1:80", False), ("[2001:db8::1]:80", False), ("unix", False), ("", False), ("[::ffff:10.0.0.1]:1", False),
])
def test_is_loopback(peer: str, loopback: bool) -> None:
    assert is_loopback(peer) is loopback


@pytest.fixture
def admin(tmp_path: Path) -> AdminResponder:
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, 0o755)
    return AdminResponder(default_settings(root=str(root)), DiskIO(inline=True))


def test_non_loopback_peer_gets_404(admin: AdminResponder) -> None:
    with pytest.raises(HTTPError) as caught:
        admin.respond(_request(b"/-/status", peer="192.0.2.1:4000"))
    assert caught.value.status == 404
    assert admin.respond(_request(b"/-/status")).status == 200


def test_health_is_503_while_draining(admin: AdminResponder) -> None:
    assert admin.respond(_request(b"/-/health")).status == 200
    admin.state.draining = True
    response = admin.respond(_request(b"/-/health"))
    assert response.status == 503 and response.body == b"draining\n"


@pytest.mark.parametrize("seconds, bucket", [
    (0.0, 0), (0.00001, 0), (0.000011, 1), (0.000023, 1), (0.0005, 5), (0.000501, 6), (0.003, 8),
    (10.0, 18), (10.5, 19), (1e6, 19),
])
def test_histogram_bucket_choice(seconds: float, bucket: int) -> None:
    m = metrics.RequestMetrics()
    m.observe("GET", 200, seconds)
    assert m.buckets.index(1) == bucket


def test_methods_are_bounded_and_codes_counted() -> None:
    m = metrics.RequestMetrics()
    for method, status in [("GET", 200), ("GET", 404), ("BREW", 501), ("POST", 302), ("GET", 999), ("GET", 200)]:
        m.observe(method, status, 0.001)
    assert m.snapshot()["by_method"] == {"GET": {"200": 2, "404": 1, "599": 1}, "OTHER": {"501": 1}, "POST": {"302": 1}}


def test_aggregate_and_run_dir_round_trip(admin: AdminResponder) -> None:
    run_dir = metrics.make_run_dir()
    try:
        admin.run_dir = run_dir
        admin.state.metrics.observe("GET", 200, 0.002)
        other = admin.snapshot()
        other["pid"] = os.getppid()  # pretend another live worker published
        other["counters"]["requests"] = 5
        metrics.publish(run_dir, other)
        ledger = metrics.MasterLedger(run_dir)
        gone = dict(other, pid=os.getpid() + 10**6)  # a worker that exited: the master retires it
        metrics.publish(run_dir, gone)
        ledger.worker_exited(gone["pid"])
        master, found = metrics.read_run_dir(run_dir)
        assert master["pid"] == os.getpid() and [s["pid"] for s in found] == [os.getppid()]
        assert master["retired_pids"] == [gone["pid"]] and master["retired"]["counters"]["requests"] == 5
        document = json.loads(admin.respond(_request(b"/-/status")).body)
        # the other worker (5) + the retired one (5): exited workers keep counting
        assert document["workers"] == 2 and document["requests"] == 10
        text = admin.respond(_request(b"/-/metrics")).body.decode()
        assert 'x15g_requests_total{method="GET",code="200"} 3' in text
        assert "x15g_request_duration_seconds_count 3" in text
        assert 'process_open_fds{worker="master",pid="%d"}' % os.getpid() in text
    finally:
        metrics.remove_run_dir(run_dir)
    assert not os.path.exists(run_dir)
