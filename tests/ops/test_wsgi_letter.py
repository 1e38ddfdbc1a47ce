"""WSGI by the letter, through a real x15g process: the environ's CGI variables, the app's own
Content-Length, apps that break PEP 3333, wsgiref.validate, trusted proxies and request IDs."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from tests.support.clients import fetch, fetch_json
from tests.support.server import APP_ENV, ServerProcess, raw_exchange
from tests.support.waiting import wait_for


@pytest.fixture
def server(docroot: Path, tmp_path: Path):
    access = tmp_path / "access.json"
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", "--wsgi-prefix", "/app", "--access-log",
                       str(access), "--access-log-format", "json", env=APP_ENV) as proc:
        proc.access = access
        yield proc


def test_content_length_is_absent_without_one_and_zero_when_zero(server: ServerProcess) -> None:
    env = fetch_json(server, "/app/env")
    assert env["present"] == [] and env["CONTENT_LENGTH"] is None
    env = fetch_json(server, "/app/env", method="POST", body=b"", headers={"Content-Length": "0"})
    assert env["CONTENT_LENGTH"] == "0" and env["present"] == ["CONTENT_LENGTH"]
    env = fetch_json(server, "/app/env", method="POST", body=b"abc", headers={"Content-Type": "text/plain"})
    assert (env["CONTENT_LENGTH"], env["CONTENT_TYPE"], env["body"]) == ("3", "text/plain", "abc")


def test_the_usual_int_content_length_idiom_works_for_a_get(server: ServerProcess) -> None:
    status, _, body = fetch(server, "/app/content-length")
    assert (status, body) == (200, b"0 0\n")
    status, _, body = fetch(server, "/app/content-length", method="POST", body=b"12345")
    assert (status, body) == (200, b"5 5\n")


@pytest.mark.parametrize("path, words", [
    ("/app/fault/none", "returned NoneType"),
    ("/app/fault/str-chunk", "yielded str"),
    ("/app/fault/twice", "start_response called twice"),
    ("/app/fault/no-start", "without calling start_response"),
    ("/app/fault/bad-status", "bad status"),
])
def test_pep3333_violations_are_500_with_one_clear_line(server: ServerProcess, path: str, words: str) -> None:
    status, _, body = fetch(server, path)
    assert status == 500 and b"Traceback" not in body
    wait_for(lambda: words in server.log(), timeout=5)
    assert fetch(server, "/app/env")[0] == 200  # the same worker keeps serving


@pytest.mark.parametrize("path, words", [
    ("/app/fault/str-later", "yielded str, not bytes, after its first chunk"),
    ("/app/fault/raise-later", "failed after the first byte"),
])
def test_a_failure_after_the_first_byte_closes_the_stream_unfinished(server: ServerProcess, path: str,
                                                                      words: str) -> None:
    conn = server.http()
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200  # the head had gone out
    with pytest.raises(http.client.IncompleteRead):
        response.read()  # no last chunk: the client sees the answer is incomplete
    conn.close()
    wait_for(lambda: words in server.log(), timeout=5)
    assert fetch(server, "/app/env")[0] == 200


def test_more_bytes_than_declared_are_cut(server: ServerProcess) -> None:
    status, headers, body = fetch(server, "/app/fault/long-cl")
    assert (status, headers["content-length"], body) == (200, "10", b"0123456789")
    wait_for(lambda: "declared Content-Length 10 but sent 20" in server.log(), timeout=5)


def test_fewer_bytes_than_declared_close_the_connection(server: ServerProcess) -> None:
    answer = raw_exchange(server.port, b"GET /app/fault/short-cl HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: 20" in head and body == b"01234"  # then EOF: raw_exchange read to close
    conn = server.http()
    conn.request("GET", "/app/fault/short-cl")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()


def test_wsgiref_validate_finds_nothing_wrong(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:validated", env=APP_ENV) as server:
        status, _, body = fetch(server, "/x")
        assert (status, body) == (200, b"GET 0\n")
        status, _, body = fetch(server, "/x", method="POST", body=b"hello")
        assert (status, body) == (200, b"POST 5\n")
        answer = raw_exchange(server.port, b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                           b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"POST 3\n")
        head = raw_exchange(server.port, b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert "AssertionError" not in server.log() and "WSGIWarning" not in server.log()


def test_a_trusted_proxy_sets_client_scheme_and_request_id(server: ServerProcess) -> None:
    env = fetch_json(server, "/app/env", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9",
                                                   "X-Forwarded-Proto": "https", "X-Request-ID": "abc-123"})
    # 127.0.0.1 is trusted by default; 203.0.113.9 is not, so it is the client (nginx realip's rule)
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"], env["HTTP_X_REQUEST_ID"]) == ("203.0.113.9", "https", "abc-123")
    env = fetch_json(server, "/app/env", headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https'})
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == ("2001:db8::1", "4711", "https")
    # what the proxy forwards from the world is not loopback for the admin endpoints
    assert fetch(server, "/-/health", headers={"X-Forwarded-For": "203.0.113.9"})[0] == 404
    assert fetch(server, "/-/health")[0] == 200
    wait_for(lambda: server.access.exists() and any(
        json.loads(line).get("remote") == "203.0.113.9" and json.loads(line).get("request_id") == "abc-123"
        for line in server.access.read_text().splitlines()), timeout=5)


def test_forwarding_headers_from_an_untrusted_peer_are_ignored(docroot: Path) -> None:
    with ServerProcess(docroot, "--wsgi", "tests.ops.apps:app", "--forwarded-allow-ips", "10.0.0.0/8",
                       env=APP_ENV) as server:
        env = fetch_json(server, "/env", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                                                  "X-Request-ID": "forged"})
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")
        assert env["HTTP_X_REQUEST_ID"] != "forged"


def test_every_app_answer_has_a_request_id_the_app_saw(server: ServerProcess) -> None:
    ids = set()
    for _ in range(3):
        status, headers, body = fetch(server, "/app/env")
        assert status == 200 and headers["x-request-id"] == json.loads(body)["HTTP_X_REQUEST_ID"]
        ids.add(headers["x-request-id"])
    assert len(ids) == 3


def test_an_app_that_sets_its_own_request_id_keeps_it(server: ServerProcess) -> None:
    answer = raw_exchange(server.port, b"GET /app/own-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.count(b"X-Request-ID:") == 1 and b"X-Request-ID: app-chosen\r\n" in answer
