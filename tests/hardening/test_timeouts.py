"""Per-connection timeouts under hostile clients (issue 6: slowloris and friends).

Each test starts a real x15g with small timeouts and provokes one of them over 127.0.0.1:
- slowloris: 200 connections trickling a head (tools/slowloris.py in a separate process) cost a
  normal client less than 20% of its rate, and each is dropped after --header-timeout;
- header, keep-alive, body and send timeouts each close the connection, never before their setting
  (all at once on one server, each counted apart in /-/metrics); a client that never reads is
  closed after --send-timeout and its descriptor released.

A timeout may fire late on a loaded machine (the sweeper runs every 0.25 s, the machine may be
busy), never early: the tests bound it from below, and from above only by a hang guard.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.waiting import fd_count, wait_for, worker_pids
from tests.support.clients import BIG_SIZE, get, read_until_close
from tests.support.server import REPO, ServerProcess

from tools.slowloris import client_rate

TIMEOUTS = ("--header-timeout", "2", "--keepalive-timeout", "1", "--body-timeout", "1", "--send-timeout", "1")


@pytest.fixture
def tserver(hroot):
    with ServerProcess(hroot, *TIMEOUTS) as proc:
        yield proc


def _attack_round(port: int) -> tuple[float, float, dict]:
    """alone, under 200 slowloris connections, alone again: (rate alone, rate under, stats)."""
    before = client_rate(port, 1.0)
    attacker = subprocess.Popen(
        [sys.executable, "-m", "tools.slowloris", "--port", str(port), "--conns", "200",
         "--interval", "0.5", "--duration", "15"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        time.sleep(1.0)  # let all 200 connect
        under = client_rate(port, 2.0)
        time.sleep(0.2)  # the first generation (connected 1 s before) has lived past the header timeout
    finally:
        attacker.send_signal(signal.SIGTERM)
        out, _ = attacker.communicate(timeout=10)
    after = client_rate(port, 1.0)
    return (before + after) / 2, under, json.loads(out)


def test_slowloris_does_not_starve_normal_clients(tserver) -> None:
    """The machine is shared (CI, other benchmarks): a round whose ratio falls below 0.8 is retried
    up to twice; the rates alone are measured before and after the attack to cancel drift."""
    client_rate(tserver.port, 0.5)  # warm up
    rounds = []
    for _ in range(3):
        alone, under, stats = _attack_round(tserver.port)
        rounds.append(round(under / alone, 2))
        print(f"rate alone {alone:.0f}/s, under 200 slowloris {under:.0f}/s, ratio {under / alone:.2f}; {stats}")
        assert stats["opened"] >= 200 and stats["refused"] == 0
        # Every slowloris connection was ended by the server at --header-timeout (2 s), with a 408.
        assert stats["dropped_by_server"] >= 200
        assert 1.8 <= stats["lifetime_min"]  # never before --header-timeout
        assert stats["answers"].get("408", 0) >= 0.9 * stats["dropped_by_server"]
        if under >= 0.8 * alone:
            return
    pytest.fail(f"normal clients fell below 80% of their rate under slowloris in every round: {rounds}")


def _sockets(pid: int) -> set[str]:
    """The sockets a process holds (`socket:[inode]`), from /proc."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_send_timeout_client_never_reads(tserver) -> None:
    """A client that asks for a big file and never reads is closed after --send-timeout; its
    descriptor is released (the worker's fd count goes back)."""
    (worker,) = worker_pids(tserver.pid)
    get(tserver.port, "/big.bin")  # the cache now holds big.bin's fd: part of the baseline
    before, listening = fd_count(worker), _sockets(worker)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", tserver.port))
    try:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        # Nothing is read until the worker has given up on the send (send timeout 1 s) and
        # closed its end. Its socket is told by inode, not by the fd count, which the worker's
        # once-a-second metrics snapshot file moves too.
        accepted = wait_for(lambda: _sockets(worker) - listening, 10, what="connection accepted")
        wait_for(lambda: not accepted & _sockets(worker), 20, what="connection closed by the send timeout")
        data, closed = read_until_close(sock, 5.0)
    finally:
        sock.close()
    assert closed and data.startswith(b"HTTP/1.1 200 ")
    assert len(data) < BIG_SIZE, "the whole file arrived: the send never blocked"
    assert wait_for(lambda: fd_count(worker) <= before, 5, what="the fd count back where it was")


def _closes(socks: dict[str, socket.socket], timeout: float = 20.0) -> dict[str, tuple[float, bytes]]:
    """Read all of `socks` at once until the server closes each: {name: (seconds to its close, bytes)}."""
    start = time.monotonic()
    selector = selectors.DefaultSelector()
    data = dict.fromkeys(socks, b"")
    for name, sock in socks.items():
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, name)
    closed: dict[str, tuple[float, bytes]] = {}
    while len(closed) < len(socks) and time.monotonic() - start < timeout:
        for key, _ in selector.select(0.5):
            try:
                chunk = socks[key.data].recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                data[key.data] += chunk
            else:
                closed[key.data] = (time.monotonic() - start, data[key.data])
                selector.unregister(socks[key.data])
    selector.close()
    assert len(closed) == len(socks), f"not closed by the server: {set(socks) - set(closed)}"
    return closed


def test_each_timeout_closes_at_its_setting_and_is_counted_apart(tserver) -> None:
    """Header (a partial head, a silent connection), keep-alive, body and send timeouts at once:
    each connection is closed never before its setting, with its answer, and /-/metrics tells an
    ordinary keep-alive idle close from each kind of slow client (issue 13)."""
    silent, partial, idle, body, stuck = (tserver.connect() for _ in range(5))
    partial.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    # A static file wants no body: 405 at once; the rest of the body is then awaited (to keep the
    # connection) only for --body-timeout. A route that reads bodies answers 408 instead
    # (tests/ops/test_wsgi_uploads.py).
    body.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    closes = _closes({"silent": silent, "partial": partial, "idle": idle, "body": body})
    for sock in (silent, partial, idle, body):
        sock.close()
    assert closes["silent"][0] >= 1.8 and closes["silent"][1] == b"", closes  # --header-timeout 2
    assert closes["partial"][0] >= 1.8 and closes["partial"][1].startswith(b"HTTP/1.1 408 "), closes
    answer = closes["idle"][1]
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello, world\n"), closes
    assert closes["idle"][0] >= 0.7, closes  # --keepalive-timeout 1 after the answer
    assert closes["body"][0] >= 0.8 and closes["body"][1].startswith(b"HTTP/1.1 405 "), closes  # --body-timeout 1

    def counted() -> dict[str, float]:
        text = get(tserver.port, "/-/metrics")[1].decode()
        samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("x15g_") and " " in line)
        found = {k: float(v) for k, v in samples.items() if "timeouts_total" in k or "idle_closes" in k}
        return found if found.get('x15g_timeouts_total{kind="send"}') else {}

    found = wait_for(counted, 20, what="the send timeout counted")
    stuck.close()
    assert found == {'x15g_keepalive_idle_closes_total': 1.0, 'x15g_timeouts_total{kind="header"}': 2.0,
                     'x15g_timeouts_total{kind="body"}': 1.0, 'x15g_timeouts_total{kind="send"}': 1.0}
