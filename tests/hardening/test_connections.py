"""Connection-level abuse (issue 6): backpressure at --max-connections, aborted transfers,
half-close, garbage after a pipelined request, and EMFILE on accept.

Each test provokes the behaviour with real sockets against a real x15g and checks both the
hostile connection's fate and that a normal client is still served afterwards.
"""

from __future__ import annotations

import socket
import threading
import time

from tests.support.waiting import fd_count, wait_for, worker_pids
from tests.support.clients import BIG_SIZE, get, read_until_close, reset_close, statuses
from tests.support.server import ServerProcess

GET_HELLO = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"


def _keepalive_conn(port: int) -> socket.socket:
    """A connection that has completed one request and now sits idle in keep-alive."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(GET_HELLO)
    data = b""
    while not data.endswith(b"hello, world\n"):
        data += sock.recv(4096)
    return sock


def test_max_connections_backpressure(hroot) -> None:
    """With 4 slots busy the 5th client waits in the kernel backlog (no answer, no refusal) and is
    served as soon as one slot frees; the worker never crashes."""
    with ServerProcess(hroot, "--max-connections", "4", "--keepalive-timeout", "30") as server:
        busy = [_keepalive_conn(server.port) for _ in range(4)]
        waiting = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # handshake: backlog
        waiting.sendall(GET_HELLO)
        waiting.settimeout(1.0)
        try:
            waiting.recv(4096)
            raise AssertionError("served beyond --max-connections")
        except socket.timeout:
            pass
        busy.pop().close()  # one slot frees
        waiting.settimeout(5)
        data = waiting.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 ")
        waiting.close()
        for sock in busy:
            sock.close()
        results = []
        threads = [threading.Thread(target=lambda: results.append(get(server.port, "/hello.txt")[0]))
                   for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results == [200] * 20
        assert server.proc.poll() is None and len(worker_pids(server.pid)) == 1
        assert "Traceback" not in server.log()


def test_thousand_aborted_large_transfers_leak_nothing(hroot) -> None:
    """1,000 clients reset (SO_LINGER 0) in the middle of a 4 MiB sendfile: the worker's fd count
    returns to its baseline, and a keep-alive client served throughout is unaffected."""
    with ServerProcess(hroot) as server:
        (worker,) = worker_pids(server.pid)
        get(server.port, "/big.bin")  # the cache now holds big.bin's fd: part of the baseline
        bystander = _keepalive_conn(server.port)
        before = fd_count(worker)
        for i in range(1000):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            reset_close(sock)
            if i % 100 == 0:
                bystander.sendall(GET_HELLO)
                assert bystander.recv(4096).endswith(b"hello, world\n")
        assert wait_for(lambda: fd_count(worker) <= before, 5.0), (before, fd_count(worker))
        after = fd_count(worker)
        print(f"worker fds before {before}, after 1,000 aborted 4 MiB transfers {after}")
        bystander.close()
        assert get(server.port, "/big.bin")[1].__len__() == BIG_SIZE


def test_half_close_after_request_still_answered(server_default) -> None:
    """A client may shut down its sending side after the request (RFC 9112 §9.6): it gets the
    answer, then the server closes."""
    with socket.create_connection(("127.0.0.1", server_default.port), timeout=5) as sock:
        sock.sendall(GET_HELLO)
        sock.shutdown(socket.SHUT_WR)
        data, closed = read_until_close(sock, 5)
    assert closed and statuses(data) == [200] and data.endswith(b"hello, world\n")


def test_half_close_mid_head_closes_at_once(server_default) -> None:
    with socket.create_connection(("127.0.0.1", server_default.port), timeout=5) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHo")
        sock.shutdown(socket.SHUT_WR)
        data, closed = read_until_close(sock, 5)
    # closed within the 5 s read, so not by --header-timeout (10 s): at once, on the EOF
    assert closed and b"200 OK" not in data


def test_garbage_after_pipelined_request(server_default) -> None:
    """The valid request is answered, the garbage gets 400 and the connection closes; a valid
    request after the garbage is never answered."""
    payload = GET_HELLO + b"\x16\x03\x01garbage\r\n\r\n" + GET_HELLO
    with socket.create_connection(("127.0.0.1", server_default.port), timeout=5) as sock:
        sock.sendall(payload)
        data, closed = read_until_close(sock, 5)
    assert closed and statuses(data) == [200, 400]
    assert get(server_default.port, "/hello.txt") == (200, b"hello, world\n")


def _exhaust_descriptors(hroot) -> str:
    """RLIMIT_NOFILE 40: 80 idle connections exhaust the worker's descriptors for 2 s; then the
    clients leave and service must resume. Returns the server log."""
    server = ServerProcess(hroot, "--header-timeout", "30")
    server.args = ["prlimit", "--nofile=40:40", "--"] + server.args
    with server:
        get(server.port, "/hello.txt")
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(80)]
        time.sleep(2.0)  # accept keeps failing with EMFILE; the worker retries every 0.1 s
        for sock in clients:
            sock.close()
        assert wait_for(lambda: _served(server.port), 10.0)
        assert server.proc.poll() is None and len(worker_pids(server.pid)) == 1
        return server.log()


def test_emfile_on_accept_backs_off_with_one_log_line(hroot) -> None:
    """One line for 2 s of failing accepts (about 20 retries), and no traceback in the log."""
    log = _exhaust_descriptors(hroot)
    assert log.count("accept failed") == 1, log
    assert "Too many open files" in log
    assert "Traceback" not in log, log


def _served(port: int) -> bool:
    try:
        return get(port, "/hello.txt", timeout=1) == (200, b"hello, world\n")
    except OSError:
        return False
