"""Every payload of the three corpora (gunicorn, llhttp, http-garden) through a REAL x15g.

The pure parser (`drive` in test_corpus_parser.py) is the oracle: for each case it says how many
complete requests the bytes hold and whether they end in an error. The server must agree:
- every request the parser completes is answered, valid ones with neither 400 nor a 5xx
  (except 501 for a method no resource implements);
- bytes the parser refuses get exactly one error answer with the parser's status, then the
  connection closes (no answer ever appears for bytes after the error: no smuggling);
- bytes that never complete a head or body end with a timeout (408) or a plain close;
- every connection ends within a bounded time (small timeouts), and after each batch the worker
  (same PID) still serves a normal GET.
Cases run concurrently against one server per corpus limit configuration, to stay fast.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.waiting import worker_pids
from tests.support.corpus import Case, corpus_available, load_all
from tests.requests.test_corpus_parser import SKIP_NOTE, drive, limits_for
from tests.support.server import ServerProcess, raw_exchange

TIMEOUTS = ("--header-timeout", "1", "--keepalive-timeout", "1", "--body-timeout", "1")
CASES = [c for c in load_all() if c.expect != "skip"]
BATCH = 64  # cases at once: a batch lasts as long as its slowest case (a 1 s timeout)
READ_LIMIT = 6.0  # seconds: the longest a connection may take to end (timeouts are 1 s)


def _cfg_key(case: Case) -> tuple:
    return tuple(sorted(case.cfg.items()))


GROUPS: dict[tuple, list[Case]] = {}
for _case in CASES:
    GROUPS.setdefault(_cfg_key(_case), []).append(_case)


def _exchange(port: int, case: Case) -> tuple[bytes, bool, float]:
    """Send the case, read until the server closes: (bytes, closed, seconds)."""
    start = time.monotonic()
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=READ_LIMIT) as sock:
        try:
            sock.sendall(case.raw)
            if case.second:
                time.sleep(0.05)
                sock.sendall(case.second)
        except OSError:
            pass  # the server may close before reading everything (an early 4xx)
        closed = False
        while time.monotonic() - start < READ_LIMIT:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            chunks.append(data)
    return b"".join(chunks), closed, time.monotonic() - start


def _statuses(data: bytes) -> list[int]:
    """Status codes of the responses in `data`, walking heads and Content-Length bodies."""
    found = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0 or not data.startswith(b"HTTP/1.", pos):
            break
        head = data[pos:end].split(b"\r\n")
        found.append(int(head[0].split(b" ")[1]))
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        pos = end + 4 + length
    return found


def _check(case: Case, data: bytes, closed: bool, seconds: float) -> str | None:
    """None when the server's behaviour agrees with the parser oracle, else why not."""
    if not closed:
        return f"connection still open after {seconds:.1f}s"
    out = drive(case.raw + case.second, limits_for(case), stop_on_close=True)
    got = _statuses(data)
    answered = len(out.requests)
    for status in got[:answered]:
        if status == 400 or (status >= 500 and status != 501):
            return f"request the parser accepts answered {status}: {got}"
    if out.end == "error":
        expected = got[:answered] + [out.error.status]
        if got != expected and not (len(got) <= answered and 501 in got):
            return f"expected {expected} (then close) for {out.error!r}, got {got}"
    elif out.end == "incomplete":
        # 200/405: a complete head whose body is still coming, to a route that takes no body (a
        # static file), is answered at once (issue 13.7); the connection then waits or closes.
        if len(got) > answered + 1 or (len(got) == answered + 1 and got[-1] not in (408, 400, 413, 431, 414, 405, 200)):
            return f"incomplete input: expected {answered} answers then 408/close, got {got}"
    elif len(got) != answered and not (len(got) < answered and 501 in got):
        return f"expected {answered} answers, got {got}"
    return None


@pytest.mark.skipif(not corpus_available(), reason=SKIP_NOTE)
@pytest.mark.parametrize("cfg", list(GROUPS), ids=[",".join(f"{k}={v}" for k, v in g) or "default" for g in GROUPS])
def test_corpus_through_real_server(tmp_path, cfg: tuple) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "index.html").write_bytes(b"ok\n")
    limits = [arg for name, value in cfg for arg in ("--" + name.replace("_", "-"), str(value))]
    failures = []
    with ServerProcess(root, *TIMEOUTS, *limits) as server, ThreadPoolExecutor(BATCH) as pool:
        workers = worker_pids(server.pid)
        cases = GROUPS[cfg]
        for at in range(0, len(cases), BATCH):
            batch = cases[at:at + BATCH]
            results = pool.map(lambda c: _exchange(server.port, c), batch)
            for case, (data, closed, seconds) in zip(batch, results):
                problem = _check(case, data, closed, seconds)
                if problem:
                    failures.append(f"{case.case_id}: {problem}")
            # HTTP/1.0 without fields: fits even the tightest corpus limits (max_field_size=8).
            answer = raw_exchange(server.port, b"GET /index.html HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nok\n"), "worker stopped serving"
            assert worker_pids(server.pid) == workers, "a worker died"
        assert "Traceback" not in server.log(), server.log()
    assert not failures, "\n".join(failures)
