"""Ready answers through a real server: repeated keep-alive requests answered by the hub from
stored bytes must be byte-for-byte what the full path sends, and every rule of the full path
(revalidation, keep-alive limits and timeouts, framing, partial writes, logging) still holds."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

from tests.support.waiting import worker_pids
from tests.support.server import ServerProcess

GET_HELLO = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"


def read_response(sock: socket.socket, head_only: bool = False) -> tuple[bytes, bytes]:
    """One response from `sock`: (head, body), the body read by Content-Length (none for a HEAD,
    `head_only`, or a 304)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    head_only = head_only or head.startswith(b"HTTP/1.1 304 ")
    length = 0 if head_only else int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed inside a body"
        rest += chunk
    assert len(rest) == length, "more bytes than the response announced"
    return head, rest


def without_date(head: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", head)


def metric(server: ServerProcess, name: str, timeout: float = 4.0) -> float:
    """Read one metric, waiting for the once-a-second publication to reach `minimum`."""
    with server.connect() as sock:
        sock.sendall(b"GET /-/metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        _, body = read_response(sock)
    match = re.search(rb"^x15g_%s (\S+)$" % name.encode(), body, re.M)
    assert match, body.decode()
    return float(match.group(1))


def wait_metric(server: ServerProcess, name: str, minimum: float, timeout: float = 4.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = metric(server, name)
        if value >= minimum or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_repeated_requests_get_the_same_bytes_from_the_hub(docroot: Path) -> None:
    with ServerProcess(docroot) as server, server.connect() as sock:
        answers = []
        for _ in range(20):
            sock.sendall(GET_HELLO)
            answers.append(read_response(sock))
        assert {body for _, body in answers} == {b"hello, world\n"}
        assert len({without_date(head) for head, _ in answers}) == 1
        assert answers[0][0].startswith(b"HTTP/1.1 200 OK\r\n")
        # The first two took the full path (a head is stored on its second answer); 18 were ready.
        assert wait_metric(server, "ready_answers_total", 18) == 18
        assert wait_metric(server, "requests_total{method=\"GET\",code=\"200\"}", 20) >= 20


def test_disabled_by_setting(docroot: Path) -> None:
    with ServerProcess(docroot, "--ready-answers", "0") as server, server.connect() as sock:
        for _ in range(5):
            sock.sendall(GET_HELLO)
            assert read_response(sock)[1] == b"hello, world\n"
        assert metric(server, "ready_answers_total") == 0


def test_a_changed_file_is_served_after_the_revalidation_window(docroot: Path) -> None:
    with ServerProcess(docroot, "--cache-revalidate", "0.2") as server, server.connect() as sock:
        for _ in range(5):
            sock.sendall(GET_HELLO)
            assert read_response(sock)[1] == b"hello, world\n"
        (docroot / "hello.txt").write_bytes(b"HELLO, WORLD\n")  # same size, new content and mtime
        time.sleep(0.4)
        for _ in range(3):
            sock.sendall(GET_HELLO)
            assert read_response(sock)[1] == b"HELLO, WORLD\n"
        (docroot / "hello.txt").unlink()
        time.sleep(0.4)
        sock.sendall(GET_HELLO)
        assert read_response(sock)[0].startswith(b"HTTP/1.1 404 ")


def test_keepalive_request_limit_counts_ready_answers(docroot: Path) -> None:
    with ServerProcess(docroot, "--max-keepalive-requests", "5") as server, server.connect() as sock:
        heads = []
        for _ in range(5):
            sock.sendall(GET_HELLO)
            heads.append(read_response(sock)[0])
        assert [b"Connection: close" in head for head in heads] == [False] * 4 + [True]
        assert sock.recv(1) == b""


def test_keepalive_timeout_still_closes_after_ready_answers(docroot: Path) -> None:
    with ServerProcess(docroot, "--keepalive-timeout", "0.5") as server, server.connect() as sock:
        for _ in range(4):
            sock.sendall(GET_HELLO)
            read_response(sock)
        started = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 2.0


def test_answer_larger_than_the_socket_buffer_is_finished_by_the_connection(docroot: Path) -> None:
    body = os.urandom(8 << 20)  # more than the largest send buffer (tcp_wmem max: 4 MiB)
    (docroot / "large.bin").write_bytes(body)
    request = b"GET /large.bin HTTP/1.1\r\nHost: t\r\n\r\n"
    with ServerProcess(docroot, "--small-file-size", str(16 << 20), "--cache-revalidate", "60") as server:
        with server.connect() as sock:
            sock.sendall(request)
            assert read_response(sock)[1] == body
            for _ in range(3):
                sock.sendall(request)
                time.sleep(0.3)  # the hub's one send fills the socket buffers and stops short
                assert read_response(sock)[1] == body
            sock.sendall(GET_HELLO)
            assert read_response(sock)[1] == b"hello, world\n"
        assert wait_metric(server, "ready_answers_total", 2) >= 2


def test_a_chunked_request_is_never_answered_by_its_head_alone(docroot: Path) -> None:
    head = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    with ServerProcess(docroot) as server, server.connect() as sock:
        for _ in range(3):
            sock.sendall(head)
            time.sleep(0.1)  # the head arrives alone, the empty body later
            sock.sendall(b"0\r\n\r\n")
            response_head, body = read_response(sock)
            assert response_head.startswith(b"HTTP/1.1 200 ") and body == b"hello, world\n"
        sock.sendall(GET_HELLO)
        assert read_response(sock)[0].startswith(b"HTTP/1.1 200 ")


def test_http10_keepalive_and_head_keep_their_framing(docroot: Path) -> None:
    get10 = b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    head11 = b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
    with ServerProcess(docroot) as server, server.connect() as sock:
        for _ in range(3):
            sock.sendall(get10)
            response_head, body = read_response(sock)
            assert b"Connection: keep-alive" in response_head and body == b"hello, world\n"
            sock.sendall(head11)
            response_head, body = read_response(sock, head_only=True)
            assert b"Content-Length: 13" in response_head and body == b""
        sock.sendall(GET_HELLO)
        assert read_response(sock)[1] == b"hello, world\n"  # nothing stray was left on the wire


def test_every_request_is_logged_with_an_access_log(docroot: Path, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    ua = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: probe \"1\"\r\nReferer: /from\r\n\r\n"
    with ServerProcess(docroot, "--access-log", str(log)) as server, server.connect() as sock:
        port = sock.getsockname()[1]
        for _ in range(6):
            sock.sendall(ua)
            read_response(sock)
        assert wait_metric(server, "ready_answers_total", 4) >= 4  # the access log keeps them on
    lines = [line for line in log.read_text().splitlines() if "/hello.txt" in line]  # flushed by the stop
    assert len(lines) == 6
    tails = {line.split("] ", 1)[1] for line in lines}  # all but client and time
    assert tails == {'"GET /hello.txt HTTP/1.1" 200 13 "/from" "probe \\x221\\x22"'}
    assert all(line.startswith("127.0.0.1 - - [") for line in lines)
    assert port  # the same connection throughout


def test_json_access_log_lines_of_ready_answers(docroot: Path, tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    with ServerProcess(docroot, "--access-log", str(log), "--access-log-format", "json") as server:
        with server.connect() as sock:
            for _ in range(4):
                sock.sendall(GET_HELLO)
                read_response(sock)
        assert wait_metric(server, "ready_answers_total", 2) >= 2
    records = [json.loads(line) for line in log.read_text().splitlines() if "/hello.txt" in line]  # flushed by the stop
    assert len(records) == 4
    for record in records:
        assert record["remote"] == "127.0.0.1" and record["status"] == 200 and record["bytes"] == 13
        assert record["method"] == "GET" and record["path"] == "/hello.txt"
        assert 0 <= record["duration_ms"] < 1000  # seconds of this request, not a clock difference


def _queued_clients(server: ServerProcess, requests: list[bytes]) -> list[socket.socket]:
    """Connect and send `requests` while the worker is stopped, so each first request is already
    in the socket when the worker accepts it (the case answer_first serves from the accept loop)."""
    (worker,) = worker_pids(server.pid)
    os.kill(worker, signal.SIGSTOP)
    try:
        clients = []
        for request in requests:
            sock = server.connect()
            sock.sendall(request)
            clients.append(sock)
    finally:
        os.kill(worker, signal.SIGCONT)
    return clients


def test_first_requests_already_there_at_accept_are_answered_there(docroot: Path) -> None:
    close11 = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    plain10 = b"GET /hello.txt HTTP/1.0\r\n\r\n"
    with ServerProcess(docroot) as server:
        for request in (close11, plain10, GET_HELLO) * 2:  # the full path stores them on the second
            with server.connect() as sock:
                sock.sendall(request)
                read_response(sock)
        before = metric(server, "ready_answers_total")
        clients = _queued_clients(server, [close11, plain10, GET_HELLO] * 5)
        for index, sock in enumerate(clients):
            with sock:
                head, body = read_response(sock)
                assert head.startswith(b"HTTP/1.") and body == b"hello, world\n"
                if index % 3 == 2:  # keep-alive: the connection goes on with a runner
                    assert b"Connection: close" not in head
                    sock.sendall(GET_HELLO)
                    assert read_response(sock)[1] == b"hello, world\n"
                else:
                    assert b"Connection: close" in head
                    assert sock.recv(1) == b""
        assert wait_metric(server, "ready_answers_total", before + 15) >= before + 15


def test_a_large_first_answer_is_finished_by_the_runner(docroot: Path) -> None:
    body = os.urandom(8 << 20)
    (docroot / "large.bin").write_bytes(body)
    close = b"GET /large.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    keep = b"GET /large.bin HTTP/1.1\r\nHost: t\r\n\r\n"
    with ServerProcess(docroot, "--small-file-size", str(16 << 20), "--cache-revalidate", "60") as server:
        for request in (close, keep) * 2:
            with server.connect() as sock:
                sock.sendall(request)
                assert read_response(sock)[1] == body
        for sock in _queued_clients(server, [close, keep]):
            with sock:
                head, got = read_response(sock)
                assert got == body
                if b"Connection: close" in head:
                    assert sock.recv(1) == b""
                else:
                    sock.sendall(GET_HELLO)
                    assert read_response(sock)[1] == b"hello, world\n"


GET_BIG = b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"


def test_large_files_are_ready_answers_by_sendfile(docroot: Path) -> None:
    body = (docroot / "big.bin").read_bytes()  # larger than small_file_size: sent by sendfile
    with ServerProcess(docroot) as server, server.connect() as sock:
        for _ in range(5):
            sock.sendall(GET_BIG)
            assert read_response(sock)[1] == body
        assert wait_metric(server, "ready_answers_total", 3) >= 3
        assert metric(server, 'response_bodies_total{kind="sendfile"}') >= 5


def test_a_slow_reader_gets_the_rest_of_a_file_from_its_runner(docroot: Path) -> None:
    body = os.urandom(8 << 20)  # more than the socket buffers take at once
    (docroot / "large.bin").write_bytes(body)
    request = b"GET /large.bin HTTP/1.1\r\nHost: t\r\n\r\n"
    with ServerProcess(docroot, "--cache-revalidate", "60") as server, server.connect() as sock:
        for _ in range(4):
            sock.sendall(request)
            time.sleep(0.3)
            assert read_response(sock)[1] == body
        sock.sendall(GET_HELLO)
        assert read_response(sock)[1] == b"hello, world\n"
        assert wait_metric(server, "ready_answers_total", 2) >= 2


def test_a_replaced_large_file_is_served_after_the_window(docroot: Path) -> None:
    with ServerProcess(docroot, "--cache-revalidate", "0.2") as server, server.connect() as sock:
        for _ in range(3):
            sock.sendall(GET_BIG)
            read_response(sock)
        new = os.urandom(200_000)
        (docroot / "big.new").write_bytes(new)
        os.replace(docroot / "big.new", docroot / "big.bin")
        time.sleep(0.4)
        for _ in range(2):
            sock.sendall(GET_BIG)
            assert read_response(sock)[1] == new


def test_a_file_truncated_in_place_closes_the_connection_early(docroot: Path) -> None:
    size = (docroot / "big.bin").stat().st_size
    with ServerProcess(docroot, "--cache-revalidate", "60") as server:
        with server.connect() as sock:
            for _ in range(2):
                sock.sendall(GET_BIG)
                read_response(sock)
            os.truncate(docroot / "big.bin", 1000)  # same inode: the cache cannot know yet
            sock.sendall(GET_BIG)
            data = b""
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            head, _, got = data.partition(b"\r\n\r\n")
            assert b"Content-Length: %d" % size in head and len(got) < size  # short, then closed
        with server.connect() as sock:  # the worker is fine
            sock.sendall(GET_HELLO)
            assert read_response(sock)[1] == b"hello, world\n"
        assert "file ended" in server.log()


def test_with_keepalive_disabled_every_ready_answer_closes(docroot: Path) -> None:
    with ServerProcess(docroot, "--keepalive-timeout", "0") as server:
        for _ in range(2):  # the full path stores it on the second answer
            with server.connect() as sock:
                sock.sendall(GET_HELLO)
                assert b"Connection: close" in read_response(sock)[0]
        before = metric(server, "ready_answers_total")
        for sock in _queued_clients(server, [GET_HELLO] * 5):
            with sock:
                head, body = read_response(sock)
                assert b"Connection: close" in head and body == b"hello, world\n"
                assert sock.recv(1) == b""
        assert wait_metric(server, "ready_answers_total", before + 5) >= before + 5


def test_revalidations_get_ready_304s_until_the_file_changes(docroot: Path) -> None:
    """A browser revalidating a cached file repeats the same conditional head: the 304 is ready,
    and once the file changed (after the window) the same head gets the new 200."""
    with ServerProcess(docroot, "--cache-revalidate", "0.2") as server, server.connect() as sock:
        sock.sendall(GET_HELLO)
        head, _ = read_response(sock)
        etag = re.search(rb"\r\nETag: (\S+)", head).group(1)
        conditional = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n" % etag
        heads = []
        for _ in range(20):
            sock.sendall(conditional)
            heads.append(read_response(sock, head_only=True)[0])
        assert heads[0].startswith(b"HTTP/1.1 304 Not Modified\r\n") and b"\r\nETag: " + etag in heads[0]
        assert b"Content-Length" not in heads[0]
        assert len({without_date(h) for h in heads}) == 1
        assert wait_metric(server, "ready_answers_total", 18) >= 18  # 18 304s (the first two built them)
        (docroot / "hello.txt").write_bytes(b"HELLO, WORLD\n")
        time.sleep(0.4)
        sock.sendall(conditional)
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"HELLO, WORLD\n"


def test_repeated_ranges_of_a_small_file_are_ready_and_follow_changes(docroot: Path) -> None:
    with ServerProcess(docroot, "--cache-revalidate", "0.2") as server, server.connect() as sock:
        ranged = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=7-11\r\n\r\n"
        answers = []
        for _ in range(10):
            sock.sendall(ranged)
            answers.append(read_response(sock))
        assert {body for _, body in answers} == {b"world"}
        assert answers[0][0].startswith(b"HTTP/1.1 206 Partial Content\r\n")
        assert b"\r\nContent-Range: bytes 7-11/13\r\n" in answers[0][0]
        assert len({without_date(head) for head, _ in answers}) == 1
        assert wait_metric(server, "ready_answers_total", 8) >= 8
        (docroot / "hello.txt").write_bytes(b"HELLO, WORLD\n")
        time.sleep(0.4)
        sock.sendall(ranged)
        assert read_response(sock)[1] == b"WORLD"


def test_precompressed_variants_are_ready_and_follow_their_sidecar(docroot: Path) -> None:
    """A browser always sends Accept-Encoding: the sidecar's answers are ready answers too, and a
    replaced sidecar is served after the window (the original file's entry watches it)."""
    import gzip

    (docroot / "hello.txt.gz").write_bytes(gzip.compress(b"hello, world\n", mtime=0))
    gz_get = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, deflate\r\n\r\n"
    with ServerProcess(docroot, "--cache-revalidate", "0.2") as server, server.connect() as sock:
        answers = []
        for _ in range(10):
            sock.sendall(gz_get)
            answers.append(read_response(sock))
        head, body = answers[0]
        assert b"\r\nContent-Encoding: gzip\r\n" in head and b"\r\nVary: Accept-Encoding\r\n" in head
        assert gzip.decompress(body) == b"hello, world\n"
        assert len({without_date(h) + b for h, b in answers}) == 1
        etag = re.search(rb"\r\nETag: (\S+)", head).group(1)
        conditional = gz_get[:-2] + b"If-None-Match: %s\r\n\r\n" % etag
        for _ in range(5):
            sock.sendall(conditional)
            assert read_response(sock, head_only=True)[0].startswith(b"HTTP/1.1 304 ")
        sock.sendall(GET_HELLO)
        head, body = read_response(sock)
        assert body == b"hello, world\n" and b"Content-Encoding" not in head
        assert wait_metric(server, "ready_answers_total", 8 + 3) >= 8 + 3
        new = gzip.compress(b"HELLO, WORLD\n", mtime=0)
        (docroot / "hello.gz.new").write_bytes(new)
        os.replace(docroot / "hello.gz.new", docroot / "hello.txt.gz")
        time.sleep(0.4)
        for _ in range(3):
            sock.sendall(gz_get)
            assert read_response(sock)[1] == new


def test_new_heads_for_cached_files_are_answered_by_the_hub_and_counted_alike(docroot: Path) -> None:
    """Heads that never repeat (a counter in the query) are answered in the hub: once their
    method, path, version and selecting fields have been answered twice, by the ready answer
    those select, whatever the query. The bytes and the accounting are the full path's."""
    with ServerProcess(docroot) as server, server.connect() as sock:
        heads = []
        for n in range(12):
            sock.sendall(b"GET /hello.txt?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % n)
            head, body = read_response(sock)
            assert body == b"hello, world\n"
            heads.append(without_date(head))
        assert len(set(heads)) == 1
        ready = wait_metric(server, "ready_answers_total", 10)
        immediate = metric(server, "immediate_answers_total")
        assert (immediate, ready) == (1, 10)  # the 1st read the file, the 2nd stored the answer
        assert wait_metric(server, "requests_total{method=\"GET\",code=\"200\"}", 12) >= 12
        assert wait_metric(server, "response_bytes_total", 12 * 13) >= 12 * 13


def test_stored_answers_are_what_the_full_path_says_for_any_mix_of_heads(docroot: Path) -> None:
    """Heads from many 'visitors' (user agents, cookies, Referers, queries) mixed with the fields
    that do select an answer (Accept-Encoding with a gzip sidecar, Range, If-None-Match,
    If-Modified-Since, Connection, HEAD, HTTP/1.0) get exactly the answers a server without
    ready answers gives, head (but Date) and body, while most of them are ready answers."""
    import random

    (docroot / "hello.txt.gz").write_bytes(gzip.compress(b"hello, world\n", mtime=0))
    rng = random.Random(1729)
    with ServerProcess(docroot) as fast, ServerProcess(docroot, "--ready-answers", "0") as full:
        etag = re.search(rb"\r\nETag: (\S+)", _exchange(full, b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")[0])
        assert etag is not None
        line = {b"method": [b"GET"] * 4 + [b"HEAD"],
                b"path": [b"/hello.txt", b"/one_k.bin", b"/big.bin", b"/index.html", b"/missing"],
                b"version": [b"HTTP/1.1"] * 4 + [b"HTTP/1.0"]}
        encodings = [None, b"gzip", b"gzip, deflate, br", b"br"]
        selecting = [b"Range: bytes=0-4", b"Range: bytes=-3", b"If-None-Match: " + etag.group(1),
                     b'If-None-Match: "other"', b"If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT",
                     b"Connection: close", b"Connection: keep-alive", b"Accept-Encoding: gzip;q=0"]
        # A visitor keeps its field lines from request to request (that is what makes them known
        # to the parser), while its request lines change. Visitors share the fields that select
        # an answer, so that a selecting field the stored answers overlooked would show.
        visitors = []
        for v in range(60):
            fields = [b"Host: t", b"User-Agent: agent-%d" % (v % 7), b"Cookie: s=%d" % v, b"Referer: http://t/p%d" % v]
            encoding = rng.choice(encodings)
            extra = rng.choice(selecting) if v % 2 else None
            if extra is not None and extra.startswith(b"Accept-Encoding"):
                encoding = None
            fields += [b"Accept-Encoding: " + encoding] if encoding is not None else []
            fields += [extra] if extra is not None else []
            rng.shuffle(fields)
            visitors.append(b"\r\n".join(fields))
        heads = []
        for n in range(1200):
            method, path, version = (rng.choice(line[part]) for part in (b"method", b"path", b"version"))
            query = b"?n=%d" % n if rng.random() < 0.5 else b""
            heads.append(b"%s %s%s %s\r\n%s\r\n\r\n" % (method, path, query, version, rng.choice(visitors)))
        with _Client(fast) as to_fast, _Client(full) as to_full:
            for head in heads:
                want = to_full.exchange(head)
                assert to_fast.exchange(head) == want, head
        assert wait_metric(fast, "ready_answers_total", 300) >= 300  # most were stored answers
        assert metric(full, "ready_answers_total") == 0


class _Client:
    """One keep-alive connection to `server`, opened again after an answer that closes it."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.sock: socket.socket | None = None

    def __enter__(self) -> "_Client":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:
            self.sock.close()

    def exchange(self, head: bytes) -> tuple[bytes, bytes]:
        """(the answer's head without Date, its body) for the request `head`."""
        if self.sock is None:
            self.sock = self.server.connect()
        self.sock.sendall(head)
        answer_head, body = read_response(self.sock, head.startswith(b"HEAD "))
        if re.search(rb"(?i)\r\nconnection: close", answer_head) or (
                b" HTTP/1.0\r\n" in head and not re.search(rb"(?i)\r\nconnection: keep-alive", answer_head)):
            self.sock.close()
            self.sock = None
        return without_date(answer_head), body


def _exchange(server: ServerProcess, head: bytes) -> tuple[bytes, bytes]:
    with _Client(server) as client:
        return client.exchange(head)
