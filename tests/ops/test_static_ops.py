"""Precompressed sidecars (made by x15g-precompress) and --cache-control rules, end to end."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import fetch
from tests.support.server import ServerProcess

HAVE_BROTLI = importlib.util.find_spec("brotli") is not None
CSS = b"body { color: red; }\n" * 300


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ops-static") / "root"
    (root / "assets").mkdir(parents=True)
    (root / "a.css").write_bytes(CSS)
    (root / "assets" / "app.3f9a.js").write_bytes(b"console.log(1);\n" * 100)
    (root / "page.html").write_bytes(b"<p>page</p>\n" * 50)
    os.chmod(root, 0o755)
    args = [sys.executable, "-m", "x15g.static.precompress", str(root)] + (["--brotli"] if HAVE_BROTLI else [])
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return root


@pytest.fixture(scope="module")
def server(site: Path):
    rules = ["--cache-control", "/assets/*=public, max-age=31536000, immutable",
             "--cache-control", "*.html=no-cache", "--cache-control", "*.css=max-age=3600"]
    with ServerProcess(site, *rules) as proc:
        yield proc


def decode(coding: str | None, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        import brotli

        return brotli.decompress(body)
    return body


@pytest.mark.parametrize("accept, coding", [
    (None, None),
    ("gzip", "gzip"),
    ("gzip, br", "br" if HAVE_BROTLI else "gzip"),
    ("br;q=0.5, gzip", "gzip"),            # q-values beat the preference for br
    ("gzip;q=0, identity", None),
    ("*", "br" if HAVE_BROTLI else "gzip"),
    ("deflate", None),
])
def test_variant_by_accept_encoding(server: ServerProcess, accept: str | None, coding: str | None) -> None:
    status, headers, body = fetch(server, "/a.css", headers={"Accept-Encoding": accept} if accept else {})
    assert status == 200
    assert headers.get("content-encoding") == coding
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"].startswith("text/css")
    assert headers["cache-control"] == "max-age=3600"
    assert int(headers["content-length"]) == len(body)
    assert decode(coding, body) == CSS


def test_each_variant_has_its_own_etag_and_conditional_get_works(server: ServerProcess) -> None:
    etags = {}
    for coding in ("identity", "gzip"):
        _, headers, _ = fetch(server, "/a.css", headers={"Accept-Encoding": coding})
        etags[coding] = headers["etag"]
    assert etags["identity"] != etags["gzip"]
    status, headers, body = fetch(server, "/a.css", headers={"Accept-Encoding": "gzip", "If-None-Match": etags["gzip"]})
    assert (status, body) == (304, b"")
    assert headers["etag"] == etags["gzip"] and headers["vary"] == "Accept-Encoding"
    assert headers["cache-control"] == "max-age=3600"
    # the identity ETag does not validate the gzip variant
    assert fetch(server, "/a.css", headers={"Accept-Encoding": "gzip", "If-None-Match": etags["identity"]})[0] == 200


def test_range_applies_to_the_variant(server: ServerProcess, site: Path) -> None:
    whole = (site / "a.css.gz").read_bytes()
    status, headers, body = fetch(server, "/a.css", headers={"Accept-Encoding": "gzip", "Range": "bytes=10-19"})
    assert status == 206 and body == whole[10:20]
    assert headers["content-range"] == f"bytes 10-19/{len(whole)}"
    assert headers["content-encoding"] == "gzip"


def test_sidecar_is_not_served_as_its_own_file_type(server: ServerProcess) -> None:
    status, headers, body = fetch(server, "/a.css.gz")
    assert status == 200 and "content-encoding" not in headers  # it is just a file when asked by name


@pytest.mark.parametrize("path, cache_control", [
    ("/assets/app.3f9a.js", "public, max-age=31536000, immutable"),
    ("/page.html", "no-cache"),
    ("/a.css", "max-age=3600"),
])
def test_cache_control_rules(server: ServerProcess, path: str, cache_control: str) -> None:
    for method in ("GET", "HEAD"):
        status, headers, _ = fetch(server, path, method=method)
        assert status == 200 and headers["cache-control"] == cache_control
    _, headers, _ = fetch(server, path)
    status, headers304, _ = fetch(server, path, headers={"If-None-Match": headers["etag"]})
    assert status == 304 and headers304["cache-control"] == cache_control


def test_cache_control_absent_without_a_matching_rule(site: Path) -> None:
    with ServerProcess(site) as server:
        assert "cache-control" not in fetch(server, "/page.html")[1]
