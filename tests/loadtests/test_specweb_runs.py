"""Real SPECweb99-like locust runs against `x15g --specweb` on 127.0.0.1 (tiny file sets, short timing).

A clean run must be valid with 0 validation errors (and really reopen connections, §3.3), with the
summary in locust's --html report and beside its --csv files; one flipped byte in a served file
must make the run invalid with the failing check named; a master with 2 workers must aggregate
users and POST records; a run whose N users are not all running when the measurement interval
starts is invalid, and so is a static-only run (both said in the verdict).
"""

import json
import socket
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
from loadtests import cli as lr  # noqa: E402

pytestmark = pytest.mark.timeout(150)


class CountingProxy:
    """A TCP relay on 127.0.0.1 that counts the connections clients open through it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path):
    """x15g --specweb on a 3-directory file set; yields (port, docroot); stopped by PID."""
    docroot = lr.make_fileset(tmp_path, 20, 3)
    started = []

    def start():
        port = lr.free_port()
        started.append(lr.start_server(docroot, port, 1, tmp_path / "x15g.log"))
        return port

    yield start, docroot
    for proc in started:
        lr.stop(proc)


def run(tmp_path, port, users, warmup, measure, workers=0, timeout=120, extra=(), rate=20, static_only=False):
    out = tmp_path / "summary.json"
    cmd = lr.locust_command("http://127.0.0.1:%d" % port, users, 3, warmup, measure, 2, rate, str(out), False,
                            list(extra), static_only=static_only)
    code = lr.run_locust(cmd, workers, timeout)
    return code, json.loads(out.read_text())


def test_clean_run_is_valid_and_reopens_connections(server, tmp_path):
    start, _ = server
    proxy = CountingProxy(start())
    report, prefix = tmp_path / "report.html", tmp_path / "csv" / "run"
    try:
        code, s = run(tmp_path, proxy.port, 20, 5, 20, extra=["--html", str(report), "--csv", str(prefix)])
    finally:
        proxy.close()
    assert s["valid"], s["reasons"]
    assert code == 0
    assert s["N_requested"] == s["N_running"] == 20 and s["final"]
    assert s["users"] == 20 and s["conforming"] == 20 and s["conforming_pct"] == 100.0
    assert s["client_cpu_us_per_op"] > 0
    assert s["errors"] == {} and s["error_count"] == 0 and s["post_log_ok"]
    assert s["post_records"] == s["post_log_count"] > 0
    assert all(s["ops_per_s"][op] > 0 for op in ("static", "dynamic GET", "CAD GET", "POST"))
    assert s["timing"] == "non-compliant timing" and s["D"] == 3
    # §3.3: 2.7 requests per connection on average; a client that never reopened would show ~20.
    per_conn = s["requests"] / proxy.accepted
    assert 2.0 < per_conn < 3.6, (s["requests"], proxy.accepted)
    html = report.read_text()
    assert html.index('<section id="specweb99"') < html.index('<div id="root">')
    assert "<td>Verdict</td><td>VALID</td><td>score 20 conforming connections</td>" in html
    rows = (tmp_path / "csv" / "run_specweb99.csv").read_text().splitlines()
    assert rows[0] == "What,Value,Detail" and rows[1] == "Verdict,VALID,score 20 conforming connections"
    assert any(r.startswith("post.log check,passed,") for r in rows)


def test_one_flipped_byte_makes_the_run_invalid(server, tmp_path):
    start, docroot = server
    victim = docroot / "file_set" / "dir00000" / "class1_4"  # the most requested file (~10% of requests)
    data = bytearray(victim.read_bytes())
    data[3000] ^= 0x01
    victim.write_bytes(bytes(data))
    code, s = run(tmp_path, start(), 10, 2, 8)
    assert code == 1 and not s["valid"]
    assert s["errors"].get("static body mismatch", 0) > 0
    assert any("validation errors" in r for r in s["reasons"])


def test_distributed_master_and_two_workers(server, tmp_path):
    start, _ = server
    code, s = run(tmp_path, start(), 10, 3, 10, workers=2)
    assert s["workers"] == 2
    assert s["users"] == 10, s  # each user counted once across the workers
    assert s["valid"], s["reasons"]
    assert code == 0 and s["post_log_ok"] and s["post_records"] == s["post_log_count"] > 0


def test_n_not_reached_and_static_only_say_so(server, tmp_path):
    """1 user/s for 10 users with a 2 s ramp-up limit: the interval starts with fewer than N."""
    start, _ = server
    code, s = run(tmp_path, start(), 10, 1, 3, rate=1, static_only=True,
                  extra=["--specweb-rampup-limit", "2"])
    assert code == 1 and not s["valid"] and s["static_only"]
    assert s["N_requested"] == 10 and s["N_running"] < 10
    assert "N not reached: %d users at the start of the measurement interval" % s["N_running"] in s["reasons"]
    assert any("dynamic operations switched off" in r for r in s["reasons"])
    assert s["ops"]["static"] > 0 and sum(s["ops"].values()) == s["ops"]["static"] and s["error_count"] == 0
