"""Real SPECweb99-like locust runs against `x15g --specweb` on 127.0.0.1 (tiny file sets, short timing).

A clean run by a master with 2 workers must be valid with 0 validation errors, every user counted
once across the workers, the POST records aggregated, connections really reopened (§3.3), and the
summary in locust's --html report and beside its --csv files; one flipped byte in a served file
must make the run invalid with the failing check named; a run whose N users are not all running
when the measurement interval starts is invalid, and so is a static-only run (both said in the
verdict). The one-process valid run is `tests/ops/test_guide.py::test_run_the_load_test`.
"""

import json
import os
import socket
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
from loadtests import cli as lr  # noqa: E402
from tests.support.waiting import wait_for, written_lines  # noqa: E402

pytestmark = pytest.mark.timeout(150)


class CountingProxy:
    """A TCP relay on 127.0.0.1 that keeps what each client connection sent, to count its requests."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent: list[bytearray] = []  # per accepted connection, the client's bytes
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            sent = bytearray()
            self.sent.append(sent)
            threading.Thread(target=self._pipe, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if keep is not None:
                    keep += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def requests_per_connection(self) -> tuple[list[int], list[int]]:
        """(requests on each connection the client ended with `Connection: close`, on the others)."""
        done, open_ = [], []
        for sent in self.sent:
            (done if b"\r\nConnection: close\r\n" in sent else open_).append(sent.count(b" HTTP/1.1\r\n"))
        return done, open_

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path):
    """x15g --specweb on a 3-directory file set; yields (port, docroot); stopped by PID."""
    docroot = lr.make_fileset(tmp_path, 20, 3)
    started = []

    def start(extra: list[str] | None = None):
        port = lr.free_port()
        started.append(lr.start_server(docroot, port, 1, tmp_path / "x15g.log", extra))
        return port

    yield start, docroot
    for proc in started:
        lr.stop(proc)


def run(tmp_path, port, users, warmup, measure, workers=0, timeout=120, extra=(), rate=20, static_only=False):
    out = tmp_path / "summary.json"
    cmd = lr.locust_command("http://127.0.0.1:%d" % port, users, 3, warmup, measure, 1, rate, str(out), False,
                            list(extra), static_only=static_only)
    code = lr.run_locust(cmd, workers, timeout)
    return code, json.loads(out.read_text())


def test_clean_distributed_run_is_valid_and_reopens_connections(server, tmp_path):
    start, _ = server
    proxy = CountingProxy(start())
    report, prefix = tmp_path / "report.html", tmp_path / "csv" / "run"
    users = 40
    try:
        code, s = run(tmp_path, proxy.port, users, 1, 8, workers=2, rate=users,
                      extra=["--html", str(report), "--csv", str(prefix)])
    finally:
        proxy.close()
    assert s["valid"], s["reasons"]
    assert code == 0 and s["workers"] == 2
    assert s["N_requested"] == s["N_running"] == users and s["final"]
    # each user counted once across the workers, and every one conforming
    assert s["users"] == users and s["conforming"] == users and s["conforming_pct"] == 100.0
    assert s["client_cpu_us_per_op"] > 0
    assert s["errors"] == {} and s["error_count"] == 0 and s["post_log_ok"]
    assert s["post_records"] == s["post_log_count"] > 0
    assert all(s["ops_per_s"][op] > 0 for op in ("static", "dynamic GET", "CAD GET", "POST"))
    assert s["timing"] == "non-compliant timing" and s["D"] == 3
    # §3.3: a connection carries 1 request, or 5-15 (keep-alive, q = 7/37): 2.7 on average; a client
    # that never reopened would show ~40. Only the connections open when the users stopped differ.
    done, open_ = proxy.requests_per_connection()
    assert 1 in done and set(done) <= {1, *range(5, 16)}, sorted(set(done))
    assert 2.0 < sum(done) / len(done) < 3.6, (sum(done), len(done))
    assert len(open_) <= users and all(n < 15 for n in open_), open_
    html = report.read_text()
    assert html.index('<section id="specweb99"') < html.index('<div id="root">')
    assert "<td>Verdict</td><td>VALID</td><td>score %d conforming connections</td>" % users in html
    rows = (tmp_path / "csv" / "run_specweb99.csv").read_text().splitlines()
    assert rows[0] == "What,Value,Detail" and rows[1] == "Verdict,VALID,score %d conforming connections" % users
    assert any(r.startswith("post.log check,passed,") for r in rows)


def test_one_flipped_byte_makes_the_run_invalid(server, tmp_path):
    start, docroot = server
    victim = docroot / "file_set" / "dir00000" / "class1_4"  # the most requested file (~10% of requests)
    data = bytearray(victim.read_bytes())
    data[3000] ^= 0x01
    victim.write_bytes(bytes(data))
    code, s = run(tmp_path, start(), 10, 1, 2)
    assert code == 1 and not s["valid"]
    assert s["errors"].get("static body mismatch", 0) > 0
    assert any("validation errors" in r for r in s["reasons"])


def test_n_not_reached_and_static_only_say_so(server, tmp_path):
    """1 user/s for 10 users with a 2 s ramp-up limit: the interval starts with fewer than N."""
    start, _ = server
    code, s = run(tmp_path, start(), 10, 1, 2, rate=1, static_only=True,
                  extra=["--specweb-rampup-limit", "2"])
    assert code == 1 and not s["valid"] and s["static_only"]
    assert s["N_requested"] == 10 and s["N_running"] < 10
    assert "N not reached: %d users at the start of the measurement interval" % s["N_running"] in s["reasons"]
    assert any("dynamic operations switched off" in r for r in s["reasons"])
    assert s["ops"]["static"] > 0 and sum(s["ops"].values()) == s["ops"]["static"] and s["error_count"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="--isolate needs the server started as root")
def test_a_run_against_isolated_handlers_is_valid(server, tmp_path):
    """The dynamic module in sandboxed handler processes (--isolate): every answer validated
    byte for byte as in-process, the POST records in the post log, the access log complete."""
    start, _ = server
    access_log = tmp_path / "access.log"
    users = 12
    code, s = run(tmp_path, start(["--isolate", "--isolate-procs", "2", "--access-log", str(access_log)]),
                  users, 1, 4, rate=users)
    assert s["valid"], s["reasons"]
    assert code == 0 and s["users"] == s["conforming"] == users
    assert s["errors"] == {} and s["error_count"] == 0 and s["post_log_ok"]
    assert all(s["ops_per_s"][op] > 0 for op in ("static", "dynamic GET", "CAD GET", "POST"))
    # every request the users made has its line (those the handlers answered on held connections too)
    expected = sum(s["ops"].values())
    assert expected > 0
    assert wait_for(lambda: len(written_lines(access_log)) >= expected, timeout=10)
