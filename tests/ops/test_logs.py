"""Access log formats end to end and SIGUSR1 log reopening (logrotate's `create` style: rename,
signal, the server writes a new file with the old name)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.waiting import wait_for
from tests.support.clients import fetch
from tests.support.server import ServerProcess, raw_exchange
from x15g.observability.accesslog import _quote

COMBINED = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(?P<line>[^"]*)" '
                      r'(?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


def lines_of(path: Path) -> list[str]:
    """The log's lines; read after the server stopped, it has every line (a stop flushes the buffer,
    which is otherwise written about once a second)."""
    return path.read_text().splitlines() if path.exists() else []


def test_sigusr1_reopens_access_and_error_logs(docroot: Path, tmp_path: Path) -> None:
    """SIGUSR1 to the master of two workers: later requests land in a new access log, the shutdown
    lines in a new error log."""
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    with ServerProcess(docroot, "--access-log", str(access), "--error-log", str(error), workers=2) as server:
        assert fetch(server, "/hello.txt?before")[0] == 200
        wait_for(lambda: any("?before" in line for line in lines_of(access)), timeout=5)
        access.rename(tmp_path / "access.log.1")
        error.rename(tmp_path / "error.log.1")
        server.signal(signal.SIGUSR1)
        # reopening happens asynchronously in each worker: requests until one lands in the new file
        def reopened():
            for _ in range(4):
                fetch(server, "/hello.txt?after")
            return access.exists() and any("?after" in line for line in lines_of(access))

        wait_for(reopened, timeout=10, interval=0.3)
        assert not any("?before" in line for line in lines_of(access))
        assert any("?before" in line for line in lines_of(tmp_path / "access.log.1"))
        server.signal(signal.SIGTERM)
        server.proc.wait(15)
    assert error.exists() and "stopped" in error.read_text()  # the new error log got the shutdown lines


def test_error_log_follows_a_rotation_without_a_signal(docroot: Path, tmp_path: Path) -> None:
    """WatchedFileHandler semantics: the next record after the file was moved goes to a new file."""
    error = tmp_path / "error.log"
    with ServerProcess(docroot, "--error-log", str(error), workers=2) as server:
        error.rename(tmp_path / "error.log.1")
        # a malformed request makes a worker log one line at info level: it lands in a new file
        wait_for(lambda: raw_exchange(server.port, b"BAD\r\n\r\n") and lines_of(error), timeout=10, interval=0.2)
        server.signal(signal.SIGTERM)  # the master logs too: into the new file
        server.proc.wait(15)
    assert "master" in error.read_text() and "stopped" in error.read_text()


def test_combined_format(docroot: Path, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    with ServerProcess(docroot, "--access-log", str(access)) as server:
        fetch(server, "/hello.txt?q=1", headers={"Referer": "http://ref/", "User-Agent": "tester/1.0"})
        fetch(server, "/missing")
    matches = [COMBINED.match(line) for line in lines_of(access)]
    assert all(matches), lines_of(access)
    by_line = {m["line"]: m for m in matches}
    hello = by_line["GET /hello.txt?q=1 HTTP/1.1"]
    assert (hello["status"], hello["bytes"], hello["referer"], hello["agent"]) == ("200", "13", "http://ref/", "tester/1.0")
    assert by_line["GET /missing HTTP/1.1"]["status"] == "404"
    assert by_line["HEAD / HTTP/1.1"]["bytes"] == "-"


# Quotes, a backslash, a tab and obs-text: everything a field value may carry (CR, LF and other
# controls are refused by the parser with 400 before anything is logged).
FORGED = b'evil", "status": 999, "injected": "yes\\" \t\xff'


def test_json_format_cannot_be_forged(docroot: Path, tmp_path: Path) -> None:
    access = tmp_path / "access.json"
    with ServerProcess(docroot, "--access-log", str(access), "--access-log-format", "json") as server:
        request = (b"GET /hello.txt?a=%22b HTTP/1.1\r\nHost: x\r\nUser-Agent: " + FORGED +
                   b"\r\nReferer: r\"\r\nConnection: close\r\n\r\n")
        assert raw_exchange(server.port, request).startswith(b"HTTP/1.1 200")
    records = [json.loads(line) for line in lines_of(access)]  # every line is one JSON object
    record = next(r for r in records if r["path"] == "/hello.txt")
    assert set(record) == {"remote", "time", "method", "path", "query", "version", "status", "bytes",
                           "duration_ms", "referer", "user_agent", "pid"}
    assert record["status"] == 200 and "injected" not in record
    # RFC 3339 with milliseconds and a numeric offset (what log shippers parse without a pattern)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", record["time"]), record["time"]
    assert abs(datetime.fromisoformat(record["time"]).timestamp() - time.time()) < 600
    assert record["user_agent"] == FORGED.decode("latin-1")
    assert (record["query"], record["referer"], record["remote"]) == ("a=%22b", 'r"', "127.0.0.1")
    assert record["bytes"] == 13 and record["duration_ms"] >= 0 and record["pid"] != os.getpid()


def test_combined_escapes_quotes_and_controls(docroot: Path, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    with ServerProcess(docroot, "--access-log", str(access)) as server:
        request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: " + FORGED + b"\r\nConnection: close\r\n\r\n"
        raw_exchange(server.port, request)
    line = next(line for line in lines_of(access) if "hello" in line)
    match = COMBINED.match(line)
    assert match and match["agent"].startswith("evil\\x22, \\x22status\\x22")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.sampled_from([b"", b"Mozilla/5.0 (X11)", b'a"b\\c', b"\x7f\x00\xff"]))
def test_combined_values_escape_exactly_quote_backslash_and_non_printables(value: bytes) -> None:
    """The one rule, as nginx has it: `"`, `\\` and bytes outside printable ASCII as \\xHH."""
    expected = "".join("\\x%02X" % b if b in (0x22, 0x5C) or not 0x20 <= b <= 0x7E else chr(b) for b in value)
    assert _quote(value) == (expected or "-")
