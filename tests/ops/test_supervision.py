"""The master unattended (issue 13), through real x15g processes on 127.0.0.1.

- SIGHUP reloads and kill -9 respawns leave the master's fd count where it was (no pipe per spawn).
- A worker that cannot start is respawned with backoff (at most one spawn per second per slot once
  backed off), the master stays up, and the failure is logged once.
- A reload whose new generation fails, or is not ready within --graceful-timeout, is rolled back:
  the old workers keep serving; SIGTERM during a reload stops the server at once.
- SIGTERM and SIGHUP in the middle of POSTs on new and on keep-alive connections: no request is
  written and then left unanswered, every acknowledged POST is in the post log exactly once.
- kill -9 of a worker under load: no counter in /-/metrics ever decreases (scraped every 100 ms).

`X15G_TEST_CYCLES` (default 8) sets the number of reloads/respawns, `X15G_TEST_BACKOFF_SECONDS`
how long the backoff is watched (default: until two backed-off spawns); the figures in
docs/operations.md come from runs with 200 and 60.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.clients import Hammer, fetch, fetch_json, get
from tests.support.server import APP_ENV, ServerProcess
from tests.support.stopload import StopLoad, post_log_clients
from tests.support.waiting import fd_count, settled_fds, wait_for, wait_workers, worker_pids
from x15g.specweb import fileset_cli

CYCLES = int(os.environ.get("X15G_TEST_CYCLES", "8"))  # a leak of one fd per cycle shows after one
RESET = "/specweb99?command/Reset&maxload=40&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/"


def _log_lines(server: ServerProcess, pattern: str) -> list[str]:
    return [line for line in server.log().splitlines() if re.search(pattern, line)]


def _replace_all(server: ServerProcess, old: set[int], count: int = 2, timeout: float = 20) -> set[int]:
    assert wait_for(lambda: len(set(worker_pids(server.pid)) - old) == count
                    and not set(worker_pids(server.pid)) & old, timeout), server.log()
    return set(worker_pids(server.pid))


def test_reloads_and_respawns_leak_no_fd(docroot: Path) -> None:
    with ServerProcess(docroot, workers=2) as server:
        pids = set(wait_workers(server.pid, 2))
        before = settled_fds(server.pid)
        started = time.monotonic()
        for _ in range(CYCLES):
            server.signal(signal.SIGHUP)
            pids = _replace_all(server, pids)
        reloads = time.monotonic() - started
        after_reloads = settled_fds(server.pid)
        started = time.monotonic()
        for _ in range(CYCLES):
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: len(worker_pids(server.pid)) == 2 and victim not in worker_pids(server.pid), 10)
            pids = set(worker_pids(server.pid))
            settled_fds(server.pid)  # the replacement is ready: killing it earlier is a start failure
        respawns = time.monotonic() - started
        after_kills = settled_fds(server.pid)
        assert get(server.port, "/hello.txt") == (200, b"hello, world\n")
    print(f"master fds: {before} before, {after_reloads} after {CYCLES} reloads ({reloads:.1f} s), "
          f"{after_kills} after {CYCLES} kill -9 respawns ({respawns:.1f} s)")
    assert before == after_reloads == after_kills


def test_worker_failing_at_start_backs_off(docroot: Path) -> None:
    watch = float(os.environ.get("X15G_TEST_BACKOFF_SECONDS", "0"))  # 0: until 7 spawns (2 backed-off gaps)
    server = ServerProcess(docroot, "--wsgi", "tests.ops.import_fails:app", workers=1, env=APP_ENV)
    server.launch()  # no worker ever answers: do not wait for one
    try:
        started = time.monotonic()
        spawns: list[float] = []
        seen: set[int] = set()
        fds: list[int] = []

        def watching() -> bool:
            elapsed = time.monotonic() - started
            return elapsed < watch if watch else len(spawns) < 7 and elapsed < 30

        while watching():
            for pid in worker_pids(server.pid):
                if pid not in seen:
                    seen.add(pid)
                    spawns.append(time.monotonic() - started)
            if spawns:  # the master is set up
                fds.append(fd_count(server.pid))
            time.sleep(0.01)
        duration = time.monotonic() - started
        assert server.proc.poll() is None, server.log()
        spawned = len(_log_lines(server, r"spawned worker 0"))  # logged for the first spawn only
        failures = _log_lines(server, r"worker 0 failed to start")
        tracebacks = _log_lines(server, r"Traceback")
    finally:
        server.stop()
    gaps = [b - a for a, b in zip(spawns, spawns[1:])]
    late = gaps[4:]  # after 0.1 + 0.2 + 0.4 + 0.8 s of backoff
    print(f"{len(spawns)} spawns in {duration:.0f} s; gaps {[round(g, 2) for g in gaps]}; master fds {min(fds)}-{max(fds)}")
    # one line says why; the traceback of an application error is shown once, on the first failure
    assert spawned == 1 and len(failures) == 1 and len(tracebacks) <= 1, server.log()
    assert "RuntimeError: this application cannot start (test)" in failures[0]
    assert len(spawns) <= 5 + duration  # 0.1 + 0.2 + 0.4 + 0.8 s, then one a second
    assert late and min(late) >= 0.9
    assert max(fds) - min(fds) <= 2  # a ready pipe (closed at reap) and master.json being written


def test_reload_with_a_bad_config_file_keeps_serving(docroot: Path, tmp_path: Path) -> None:
    conf = tmp_path / "x15g.conf"
    conf.write_text(f"root = {docroot}\nworkers = 1\n")
    with ServerProcess(docroot, "--config", str(conf)) as server:
        (old,) = wait_workers(server.pid, 1)
        conf.write_text(f"root = {docroot}\nworkers = 1\nworkers = 2\n")
        server.signal(signal.SIGHUP)
        line = wait_for(lambda: _log_lines(server, "SIGHUP: configuration not reloaded"), 10)[0]
        assert f"{conf}:3: workers is already set on line 2" in line
        assert worker_pids(server.pid) == [old] and get(server.port, "/hello.txt")[0] == 200


def test_planned_exit_is_replaced_at_once(docroot: Path) -> None:
    """A worker that exits with status 0 after serving (recycling) is not a failure: no backoff."""
    with ServerProcess(docroot, "--wsgi", "tests.ops.startup_apps:app", "--wsgi-prefix", "/app/", workers=1,
                       env=APP_ENV) as server:
        for round_ in range(3):
            (old,) = wait_workers(server.pid, 1)
            assert fetch(server, "/app/exit")[2] == b"ok\n"
            assert wait_for(lambda: old not in worker_pids(server.pid), 5)
            gone = time.monotonic()
            assert wait_for(lambda: len(worker_pids(server.pid)) == 1, 5)
            replaced = time.monotonic() - gone
            assert fetch(server, "/app/x")[2] == b"ok\n"
            assert replaced < 0.5, replaced
        assert len(_log_lines(server, "exited by itself after serving; replacing it")) == 3
        assert _log_lines(server, "backoff") == []


def _write_conf(path: Path, docroot: Path, app: str) -> None:
    path.write_text(f"root = {docroot}\nwsgi = {app}\nwsgi-prefix = /app/\ngraceful-timeout = 3\n")


@pytest.mark.parametrize("broken", ["tests.ops.import_fails:app", "tests.ops.import_hangs:app"])
def test_failed_reload_keeps_the_old_generation(docroot: Path, tmp_path: Path, broken: str) -> None:
    conf = tmp_path / "x15g.conf"
    _write_conf(conf, docroot, "tests.ops.startup_apps:app")
    with ServerProcess(docroot, "--config", str(conf), workers=2, env=APP_ENV) as server:
        old = set(wait_workers(server.pid, 2))
        _write_conf(conf, docroot, broken)
        with Hammer(server.port, fresh=2, keepalive=2, path="/app/x", expect=b"ok\n") as hammer:
            sent = time.monotonic()
            server.signal(signal.SIGHUP)
            assert wait_for(lambda: _log_lines(server, r"SIGHUP: generation 1 .*keeps serving"), 10), server.log()
            rolled_back = time.monotonic() - sent
            assert wait_for(lambda: set(worker_pids(server.pid)) == old, 10)
            time.sleep(0.3)
        print(f"{broken}: rolled back after {rolled_back:.2f} s; {hammer.ok} ok, {hammer.failed} failed")
        assert hammer.failed == 0 and hammer.refused == 0 and hammer.ok > 0, hammer.errors[:3]
        line = _log_lines(server, r"SIGHUP: generation 1")[-1]
        if "fails" in broken:
            assert "RuntimeError: this application cannot start (test)" in line and rolled_back < 3
        else:
            assert "not every worker was ready within --graceful-timeout 3 s" in line and rolled_back >= 3
        assert fetch(server, "/app/x")[2] == b"ok\n"
        # the configuration fixed: the next reload goes through
        _write_conf(conf, docroot, "tests.ops.startup_apps:app")
        server.signal(signal.SIGHUP)
        _replace_all(server, old)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT], ids=["SIGTERM", "SIGQUIT"])
def test_a_stop_during_a_reload_is_at_once(docroot: Path, tmp_path: Path, signum: int) -> None:
    conf = tmp_path / "x15g.conf"
    _write_conf(conf, docroot, "tests.ops.startup_apps:app")
    with ServerProcess(docroot, "--config", str(conf), workers=1, env=APP_ENV) as server:
        wait_workers(server.pid, 1)
        _write_conf(conf, docroot, "tests.ops.import_hangs:app")
        server.signal(signal.SIGHUP)
        assert wait_for(lambda: len(worker_pids(server.pid)) == 2, 10)  # the new one hangs importing
        sent = time.monotonic()
        server.signal(signum)
        assert server.proc.wait(10) == 0
        stopped = time.monotonic() - sent
    print(f"{signal.Signals(signum).name} during a reload: exit after {stopped:.2f} s")
    assert stopped < 2.5


def _specweb_root(base: Path) -> Path:
    root = base / "docroot"
    assert fileset_cli.main(["--conns", "1", "--dirs", "2", "--root", str(root)]) == 0
    return root


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stop_and_reload_leave_no_post_unanswered(tmp_path: Path, signum: int) -> None:
    root = _specweb_root(tmp_path)
    with ServerProcess(root, "--specweb", workers=2) as server:
        assert fetch(server, RESET)[0] == 200
        old = set(wait_workers(server.pid, 2))
        with StopLoad(server.port, fresh=8, keepalive=4) as load:
            assert wait_for(lambda: len(load.acked) > 200, 20)
            server.signal(signum)
            if signum == signal.SIGTERM:
                server.proc.wait(30)
            else:
                _replace_all(server, old)
                at = len(load.acked)
                assert wait_for(lambda: len(load.acked) > at + 200, 20)
        logged = Counter(post_log_clients(str(tmp_path / "specweb_state" / "post.log")))
    print(f"{signal.Signals(signum).name}: {len(load.acked)} acknowledged, {len(load.unanswered)} written and "
          f"unanswered, {load.refused} refused at connect, {load.unsent} not written, {len(load.other)} other answers")
    assert load.unanswered == [] and load.other == []
    assert all(logged[c] == 1 for c in load.acked)
    assert max(logged.values()) == 1
    if signum == signal.SIGHUP:
        assert load.refused == 0 and load.unsent == 0


def test_removing_a_worker_leaves_no_post_unanswered(tmp_path: Path) -> None:
    """SIGTTOU retires a slot for good: its socket refuses new connections before the worker drains."""
    root = _specweb_root(tmp_path)
    with ServerProcess(root, "--specweb", workers=3) as server:
        assert fetch(server, RESET)[0] == 200
        wait_workers(server.pid, 3)
        with StopLoad(server.port, fresh=8, keepalive=2) as load:
            assert wait_for(lambda: len(load.acked) > 200, 20)
            server.signal(signal.SIGTTOU)
            assert wait_for(lambda: len(worker_pids(server.pid)) == 2, 20)
            at = len(load.acked)
            assert wait_for(lambda: len(load.acked) > at + 200, 20)
        logged = Counter(post_log_clients(str(tmp_path / "specweb_state" / "post.log")))
    print(f"SIGTTOU: {len(load.acked)} acknowledged, {len(load.unanswered)} unanswered, {load.refused} refused")
    assert load.unanswered == [] and load.other == [] and load.unsent == 0
    assert all(logged[c] == 1 for c in load.acked) and max(logged.values()) == 1


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


def _counters(text: str) -> dict[str, float]:
    """Every counter sample (name{labels}: value), histogram buckets/counts/sums included."""
    kinds = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name = match.group(1).split("{")[0]
        family = re.sub(r"_(bucket|count|sum)$", "", name)
        if kinds.get(name) == "counter" or kinds.get(family) == "histogram":
            out[match.group(1)] = float(match.group(2))
    return out


def test_counters_never_decrease_when_a_worker_is_killed(docroot: Path) -> None:
    with ServerProcess(docroot, workers=2) as server:
        pids = wait_workers(server.pid, 2)
        scrapes: list[dict[str, float]] = []
        stop = threading.Event()

        def scrape() -> None:
            while not stop.is_set():
                status, _, body = fetch(server, "/-/metrics")
                assert status == 200
                scrapes.append(_counters(body.decode()))
                time.sleep(0.1)

        def published(pid: int) -> bool:
            """The worker's own counts are in the totals (it published a snapshot with requests)."""
            per_worker = fetch_json(server, "/-/status")["per_worker"]
            return any(w["pid"] == pid and w["requests"] > 0 for w in per_worker)

        def scraped(more: int) -> None:
            """Wait until the scraper has read `more` further snapshots (0.1 s apart)."""
            seen = len(scrapes)
            assert wait_for(lambda: len(scrapes) >= seen + more, 10)

        scraper = threading.Thread(target=scrape, daemon=True)
        with Hammer(server.port, fresh=2, keepalive=2):
            scraper.start()
            for victim in pids:  # each killed once its counts are in the totals, then watched
                assert wait_for(lambda: published(victim), 10)
                scraped(5)
                os.kill(victim, signal.SIGKILL)
                assert wait_for(lambda: len(worker_pids(server.pid)) == 2 and victim not in worker_pids(server.pid), 5)
                scraped(8)
        stop.set()
        scraper.join(10)
    decreases = []
    for earlier, later in zip(scrapes, scrapes[1:]):
        for name, value in earlier.items():
            if name in later and later[name] < value:
                decreases.append((name, value, later[name]))
    requests = [s.get('x15g_requests_total{method="GET",code="200"}', 0) for s in scrapes]
    print(f"{len(scrapes)} scrapes; GET 200 from {requests[0]:.0f} to {requests[-1]:.0f}; decreases: {decreases[:5]}")
    assert len(scrapes) > 20 and requests[-1] > requests[0]
    assert decreases == []
