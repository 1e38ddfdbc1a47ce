"""A Flask app hosted by x15g (`--wsgi tests.ops.apps:flask_app`), at / and under a prefix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.server import APP_ENV
from tests.support.waiting import wait_for
from tests.support.clients import fetch, fetch_json
from tests.support.server import ServerProcess


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "download.bin"
    path.write_bytes(os.urandom(200_000))
    return path


@pytest.fixture(params=["/", "/shop"])
def flask_server(request: pytest.FixtureRequest, tmp_path: Path, payload: Path):
    root = tmp_path / "static"
    root.mkdir()
    (root / "style.css").write_bytes(b"body{}\n")
    os.chmod(root, 0o755)
    env = dict(APP_ENV, TEST_WSGI_FILE=str(payload))
    with ServerProcess(root, "--wsgi", "tests.ops.apps:flask_app", "--wsgi-prefix", request.param, env=env) as proc:
        proc.mount = request.param.rstrip("/")
        yield proc


def test_flask_routes_answer(flask_server: ServerProcess) -> None:
    m = flask_server.mount
    status, headers, body = fetch(flask_server, m + "/")
    assert (status, body) == (200, b"hello from flask\n")
    assert headers["content-type"].startswith("text/html")
    assert fetch_json(flask_server, m + "/hello/x15g") == {"hello": "x15g"}
    assert fetch(flask_server, m + "/missing")[0] == 404


def test_flask_sees_the_mount_point(flask_server: ServerProcess) -> None:
    m = flask_server.mount
    document = fetch_json(flask_server, m + "/echo?q=1", method="POST", body=json.dumps({"a": [1, 2]}).encode(),
                          headers={"Content-Type": "application/json", "Host": "example.test:8080"})
    assert document["json"] == {"a": [1, 2]}
    assert document["args"] == {"q": "1"}
    assert document["script_root"] == m
    assert document["url"] == f"http://example.test:8080{m}/echo?q=1"


def test_flask_form_post(flask_server: ServerProcess) -> None:
    document = fetch_json(flask_server, flask_server.mount + "/echo", method="POST", body=b"name=x%20y&n=2",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert document["form"] == {"name": "x y", "n": "2"}


def test_flask_error_is_500_and_logged(flask_server: ServerProcess) -> None:
    assert fetch(flask_server, flask_server.mount + "/boom")[0] == 500
    wait_for(lambda: "flask boom" in flask_server.log(), timeout=5)
    assert fetch(flask_server, flask_server.mount + "/")[0] == 200


def test_flask_send_file_goes_by_sendfile(flask_server: ServerProcess, payload: Path) -> None:
    status, headers, body = fetch(flask_server, flask_server.mount + "/download")
    assert status == 200 and body == payload.read_bytes()
    assert headers["content-length"] == str(len(body))


def test_static_file_beside_flask(flask_server: ServerProcess) -> None:
    status, _, body = fetch(flask_server, "/style.css")
    assert (status, body) == (200, b"body{}\n")
