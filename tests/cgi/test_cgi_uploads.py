"""CGI request bodies through a real x15g process: read from the connection as they come,
spooled past 1 MiB to a temporary file the script reads as its stdin, chunked bodies decoded
with their length in CONTENT_LENGTH, and the worker's memory not holding the upload."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.clients import read_until_close
from tests.support.server import ServerProcess

UPLOAD = """#!{python}
import hashlib, json, os, stat, sys
regular = stat.S_ISREG(os.fstat(0).st_mode)
digest, size = hashlib.sha256(), 0
while True:
    part = sys.stdin.buffer.read(65536)
    if not part:
        break
    digest.update(part)
    size += len(part)
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n")
sys.stdout.write(json.dumps({{"size": size, "sha256": digest.hexdigest(), "stdin_is_file": regular,
                             "content_length": os.environ.get("CONTENT_LENGTH"), "worker": os.getppid()}}))
"""


@pytest.fixture
def server(tmp_path: Path):
    root, scripts = tmp_path / "root", tmp_path / "scripts"
    root.mkdir()
    scripts.mkdir()
    script = scripts / "upload.py"
    script.write_text(UPLOAD.format(python=sys.executable))
    script.chmod(0o755)
    with ServerProcess(root, "--cgi-dir", f"/cgi/={scripts}", "--max-body-size", str(200 << 20),
                       "--body-timeout", "60") as proc:
        yield proc


def _answer(sock) -> dict:
    got, closed = read_until_close(sock, timeout=60)
    assert closed, got[:200]
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def _post(server: ServerProcess, head: bytes, parts) -> dict:
    with server.connect(timeout=60) as sock:
        sock.sendall(b"POST /cgi/upload.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n")
        for part in parts:
            sock.sendall(part)
        return _answer(sock)


def _peak_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def test_a_small_body_goes_through_a_pipe(server: ServerProcess) -> None:
    got = _post(server, b"Content-Length: 5\r\n", [b"hello"])
    assert got["size"] == 5 and got["content_length"] == "5" and not got["stdin_is_file"]
    assert got["sha256"] == hashlib.sha256(b"hello").hexdigest()


def test_a_large_upload_is_spooled_and_the_script_reads_it_as_a_file(server: ServerProcess) -> None:
    worker = _post(server, b"Content-Length: 0\r\n", [])["worker"]
    rss_before, _ = _peak_kib(worker)
    block = os.urandom(1 << 20)
    total = 64 << 20
    got = _post(server, b"Content-Length: %d\r\n" % total, [block] * 64)
    assert got["size"] == total and got["content_length"] == str(total) and got["stdin_is_file"]
    assert got["sha256"] == hashlib.sha256(block * 64).hexdigest()
    _, peak = _peak_kib(worker)
    assert peak - rss_before < 32 * 1024, f"worker peak RSS grew {(peak - rss_before) // 1024} MiB"


def test_a_chunked_upload_arrives_decoded_with_its_length(server: ServerProcess) -> None:
    data = os.urandom(3 << 20)
    chunks = [b"%x\r\n%s\r\n" % (len(data[i:i + 100_000]), data[i:i + 100_000]) for i in range(0, len(data), 100_000)]
    got = _post(server, b"Transfer-Encoding: chunked\r\n", chunks + [b"0\r\n\r\n"])
    assert got["size"] == len(data) and got["content_length"] == str(len(data)) and got["stdin_is_file"]
    assert got["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_chunked_body_over_max_body_size_is_413(tmp_path: Path) -> None:
    root, scripts = tmp_path / "root", tmp_path / "scripts"
    root.mkdir()
    scripts.mkdir()
    (scripts / "upload.py").write_text(UPLOAD.format(python=sys.executable))
    (scripts / "upload.py").chmod(0o755)
    with ServerProcess(root, "--cgi-dir", f"/cgi/={scripts}", "--max-body-size", "1000") as proc:
        with proc.connect() as sock:
            sock.sendall(b"POST /cgi/upload.py HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"800\r\n" + b"x" * 0x800 + b"\r\n0\r\n\r\n")
            got = sock.recv(65536)
    assert got.startswith(b"HTTP/1.1 413")
