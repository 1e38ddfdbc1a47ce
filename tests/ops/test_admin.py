"""Admin endpoints through real x15g processes: health, status JSON, Prometheus metrics summed
over workers, access limits and the disabled prefix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tests.support.clients import fetch, fetch_json
from tests.support.server import ServerProcess

# One sample line of the text format 0.0.4: name{labels} value
_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*\})? [-+0-9.eE]+(Inf)?$')


def parse_metrics(text: str) -> dict[str, float]:
    """Check every line is a valid comment or sample; return {'name{labels}': value}."""
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
        elif line.startswith("# HELP "):
            continue
        else:
            assert _SAMPLE.match(line), line
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    for key in samples:
        base = key.split("{")[0]
        assert any(base == n or base.startswith(n + "_") for n in types), f"{key} has no TYPE"
    return samples


def test_health_and_content_type(server: ServerProcess) -> None:
    status, headers, body = fetch(server, "/-/health")
    assert (status, body) == (200, b"ok\n")
    assert headers["cache-control"] == "no-store"
    status, headers, _ = fetch(server, "/-/metrics")
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert fetch(server, "/-/nothing")[0] == 404
    assert fetch(server, "/-/health", method="POST", body=b"")[0] == 405


def test_status_and_metrics_sum_over_workers(docroot: Path) -> None:
    with ServerProcess(docroot, workers=2) as server:
        for _ in range(20):  # fresh connections: the kernel spreads them over both workers
            assert fetch(server, "/hello.txt")[0] == 200
            assert fetch(server, "/big.bin", headers={"Range": "bytes=0-9"})[0] == 206
        assert fetch(server, "/missing")[0] == 404

        def settled():
            status = fetch_json(server, "/-/status")
            return status if status["workers"] == 2 and status["requests"] >= 41 else None

        status = wait_for(settled, timeout=10)
        assert status["version"] and status["uptime"] > 0 and status["master_pid"] == server.pid
        assert status["responses"]["4xx"] >= 1 and status["responses"]["2xx"] >= 40
        assert sum(w["requests"] for w in status["per_worker"]) == status["requests"]
        assert {w["worker_id"] for w in status["per_worker"]} == {0, 1}
        assert all(w["process"]["open_fds"] > 0 and w["process"]["rss_bytes"] > 0 for w in status["per_worker"])
        assert status["timeouts"] == {"header": 0, "body": 0, "send": 0}
        # A repeated request answered from ready bytes skips the cache lookup (server/answers.py).
        assert status["cache"]["hits"] + status["cache"]["misses"] + status["ready_answers"] >= 41
        assert status["cache"]["entries"] >= 2
        assert status["connections"]["open"] >= 1  # this request's own
        assert status["bodies"]["sendfile"] >= 1 and status["bodies"]["memory"] >= 20

        # every worker publishes once a second, so for the first second a worker may not see
        # the other's numbers yet: wait until the answering worker does.
        def metrics_settled():
            samples = parse_metrics(fetch(server, "/-/metrics")[2].decode())
            return samples if samples["x15g_workers"] == 2 else None

        samples = wait_for(metrics_settled, timeout=10)
        assert samples['x15g_requests_total{method="GET",code="200"}'] >= 20
        assert samples['x15g_requests_total{method="GET",code="206"}'] >= 20
        assert samples['x15g_requests_total{method="GET",code="404"}'] >= 1
        count = samples["x15g_request_duration_seconds_count"]
        assert samples['x15g_request_duration_seconds_bucket{le="+Inf"}'] == count >= 41
        buckets = [v for k, v in samples.items() if k.startswith("x15g_request_duration_seconds_bucket")]
        assert buckets == sorted(buckets)  # cumulative
        assert samples['x15g_response_bodies_total{kind="sendfile"}'] >= 1
        assert samples["x15g_response_bytes_total"] >= 20 * 13 + 20 * 10
        assert (samples["x15g_cache_hits_total"] + samples["x15g_cache_misses_total"]
                + samples["x15g_ready_answers_total"]) >= 41


@pytest.mark.parametrize("args, path, expected", [
    (("--admin-prefix", ""), "/-/health", 404),              # disabled: an ordinary (missing) path
    (("--admin-prefix", "/_x15g/"), "/_x15g/health", 200),   # moved
    (("--admin-prefix", "/_x15g/"), "/-/health", 404),
    (("--admin-access", "any"), "/-/status", 200),
])
def test_admin_prefix_settings(docroot: Path, args: tuple[str, ...], path: str, expected: int) -> None:
    with ServerProcess(docroot, *args) as server:
        assert fetch(server, path)[0] == expected


def test_admin_prefix_shadows_files(docroot: Path) -> None:
    (docroot / "-").mkdir()
    (docroot / "-" / "health").write_bytes(b"a file\n")
    with ServerProcess(docroot) as server:
        assert fetch(server, "/-/health")[2] == b"ok\n"
    with ServerProcess(docroot, "--admin-prefix", "") as server:
        assert fetch(server, "/-/health")[2] == b"a file\n"
