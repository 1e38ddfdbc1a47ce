"""WSGI hosting through a real x15g process: a plain PEP 3333 callable mounted at /app and at /."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.server import APP_ENV
from tests.support.waiting import wait_for
from tests.support.clients import fetch, fetch_json
from tests.support.server import ServerProcess, raw_exchange


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(300_000))
    return path


@pytest.fixture
def app_server(docroot: Path, payload: Path):
    env = dict(APP_ENV, TEST_WSGI_FILE=str(payload))
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", "--wsgi-prefix", "/app", env=env) as proc:
        yield proc


@pytest.mark.parametrize("path, script_name, path_info, query", [
    ("/app", "/app", "", ""),
    ("/app/", "/app", "/", ""),
    ("/app/a/b?x=1&y=%20", "/app", "/a/b", "x=1&y=%20"),
    ("/app/caf%C3%A9/%2Fslash", "/app", "/caf\u00c3\u00a9//slash", ""),  # PEP 3333: latin-1 of the bytes
])
def test_environ_splits_script_name_and_path_info(app_server: ServerProcess, path: str, script_name: str,
                                                  path_info: str, query: str) -> None:
    env = fetch_json(app_server, path)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == (script_name, path_info, query)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(app_server.port)
    assert env["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("path", ["/hello.txt", "/index.html", "/application", "/sub/"])
def test_static_files_win_outside_the_prefix(app_server: ServerProcess, docroot: Path, path: str) -> None:
    status, headers, body = fetch(app_server, path)
    if path == "/application":
        assert status == 404  # a sibling of the prefix is not the app's
    else:
        assert status == 200
        assert body == (docroot / path.lstrip("/")).read_bytes() if not path.endswith("/") else body.startswith(b"<p>")


def test_headers_reach_the_app_and_underscored_names_are_dropped(app_server: ServerProcess) -> None:
    env = fetch_json(app_server, "/app/h", headers={"X-Custom": "v1", "X-Under_Score": "spoof"})
    assert env["HTTP_X_CUSTOM"] == "v1"
    assert env["HTTP_X_UNDER_SCORE"] is None


def test_post_body_with_content_length(app_server: ServerProcess) -> None:
    env = fetch_json(app_server, "/app/post", method="POST", body=b"a=1&b=2",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert env["body"] == "a=1&b=2"
    assert env["CONTENT_LENGTH"] == "7"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["wsgi.input_terminated"] is True


def test_post_chunked_body_is_decoded_for_the_app(app_server: ServerProcess) -> None:
    request = (b"POST /app/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    answer = raw_exchange(app_server.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    env = json.loads(body)
    assert env["body"] == "hello world"
    # streamed as the app reads it: no length is known up front (PEP 3333, like gunicorn)
    assert env["CONTENT_LENGTH"] is None and env["wsgi.input_terminated"] is True


def test_file_wrapper_is_sent_whole(app_server: ServerProcess, payload: Path) -> None:
    status, headers, body = fetch(app_server, "/app/file")
    assert status == 200
    assert headers["content-length"] == str(payload.stat().st_size)
    assert body == payload.read_bytes()
    # it went by sendfile, like a large static file
    stats = wait_for(lambda: (s := fetch_json(app_server, "/-/status"))["bodies"]["sendfile"] >= 1 and s, timeout=5)
    assert stats["bodies"]["sendfile"] >= 1


def test_write_then_a_list_streams_both_in_order(app_server: ServerProcess) -> None:
    status, headers, body = fetch(app_server, "/app/write")
    assert (status, body) == (200, b"written returned\n")
    assert headers["transfer-encoding"] == "chunked"  # write() went out before the app returned


def test_a_generator_without_length_is_streamed_chunked(app_server: ServerProcess) -> None:
    expected = b"".join(b"%d\n" % i for i in range(1000))
    status, headers, body = fetch(app_server, "/app/generator")
    assert (status, body) == (200, expected)
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    answer = raw_exchange(app_server.port, b"GET /app/generator HTTP/1.0\r\nHost: a\r\n\r\n")
    head, _, raw_body = answer.partition(b"\r\n\r\n")  # HTTP/1.0: the body ends at the close
    assert b"Transfer-Encoding" not in head and raw_body == expected


@pytest.mark.parametrize("path, status", [
    ("/app/boom", 500),        # exception in the app
    ("/app/bad-header", 500),  # CR/LF in a header value
    ("/app/hop-by-hop", 500),  # PEP 3333: the app may not set Connection
    ("/app/exc-info", 502),    # start_response again with exc_info replaces the head
])
def test_app_errors_become_answers_and_the_worker_survives(app_server: ServerProcess, path: str, status: int) -> None:
    got, headers, body = fetch(app_server, path)
    assert got == status
    assert b"Injected" not in body and "injected" not in headers
    assert fetch(app_server, "/app/ok")[0] == 200  # same single worker still serving
    if path == "/app/boom":
        wait_for(lambda: "RuntimeError: boom from the test app" in app_server.log(), timeout=5)
        assert "Traceback" in app_server.log()


def test_head_sends_no_body_and_keeps_the_length(app_server: ServerProcess) -> None:
    answer = raw_exchange(app_server.port, b"HEAD /app/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""
    assert b"Content-Length: " in head


def test_wsgi_errors_go_to_the_error_log(app_server: ServerProcess) -> None:
    assert fetch(app_server, "/app/errors")[0] == 200
    wait_for(lambda: "a line for the error log" in app_server.log(), timeout=5)


def test_mounted_at_root_static_file_wins_else_app(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", env=APP_ENV) as server:
        status, _, body = fetch(server, "/hello.txt")
        assert status == 200 and body == b"hello, world\n"
        env = fetch_json(server, "/no/such/thing")
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/no/such/thing")
        env = fetch_json(server, "/hello.txt", method="POST", body=b"x")  # other methods: the app
        assert env["PATH_INFO"] == "/hello.txt" and env["body"] == "x"
        assert fetch(server, "/-/health")[0] == 200  # the admin prefix still wins


def test_bad_wsgi_module_stops_startup_with_one_line(docroot: Path) -> None:
    server = ServerProcess(docroot, "--wsgi", "tests.ops.no_such_module:app", env=APP_ENV)
    with pytest.raises(RuntimeError, match="exited with 2"):
        server.start(timeout=10)
    server.stop()
    assert "no module named 'tests.ops.no_such_module'" in server.log()


def test_app_calls_that_wait_are_answered_and_others_served_meanwhile(app_server: ServerProcess) -> None:
    """A GET without body starts the app from the event loop (respond_now); a call that waits
    (here a cooperative sleep) is joined by its connection's greenlet. Many at once on kept-alive
    connections, with quick answers in between, each answered once and in order."""
    import threading

    results: list = []

    def client(n: int) -> None:
        conn = app_server.http(timeout=30)
        got = []
        for i in range(3):
            conn.request("GET", f"/app/slow?0.{n % 3 + 1}")
            response = conn.getresponse()
            got.append((response.status, json.loads(response.read())["QUERY_STRING"]))
            conn.request("GET", "/app/generator")  # a quick, streamed one on the same connection
            response = conn.getresponse()
            got.append((response.status, len(response.read())))
        conn.close()
        results.append((n, got))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    quick = [fetch(app_server, "/app/a")[0] for _ in range(5)]  # served while the calls sleep
    for thread in threads:
        thread.join(60)
    assert quick == [200] * 5
    assert len(results) == 8
    generated = len(b"".join(b"%d\n" % i for i in range(1000)))
    for n, got in results:
        assert got == [(200, f"0.{n % 3 + 1}"), (200, generated)] * 3
    assert "Traceback" not in app_server.log()
