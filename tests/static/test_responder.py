"""StaticResponder.respond() on real temp files with DiskIO(inline=True)."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path
from typing import Any

import pytest

from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.dates import http_date
from x15g.http.messages import FileRange, Request, Response
from x15g.static.responder import StaticResponder

SMALL = b"hello, small world\n"
BIG = bytes(range(256)) * 40  # 10240 bytes: above the small-file threshold used here
CSS = b"body { color: red }\n" * 10


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "small.txt").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (root / "bare").mkdir()
    (root / "bare" / "b<&>.txt").write_bytes(b"b")
    (root / "bare" / "sub").mkdir()
    (root / ".secret").write_bytes(b"s")
    (root / "a.css").write_bytes(CSS)
    (root / "a.css.gz").write_bytes(gzip.compress(CSS))
    (root / "a.css.br").write_bytes(b"BROTLI-BYTES")
    (root / "only.js").write_bytes(b"var a;")
    (root / "only.js.gz").write_bytes(gzip.compress(b"var a;"))
    return root


def responder(root: Path, **options: Any) -> StaticResponder:
    options.setdefault("small_file_size", 4096)
    return StaticResponder(default_settings(root=str(root), **options), DiskIO(inline=True))


def request(path: bytes, method: str = "GET", **headers: bytes) -> Request:
    target = path
    path, _, query = path.partition(b"?")
    fields = {name.replace("_", "-").encode(): value for name, value in headers.items()}
    return Request(method, target, path, query, 11, fields, True)


def body_of(response: Response) -> bytes:
    """What the connection would send after the head (releasing the entry like it does)."""
    parts = response.body if isinstance(response.body, list) else [response.body]
    out = b""
    for part in parts:
        if isinstance(part, FileRange):
            out += os.pread(part.fd, part.count, part.offset)
        else:
            out += part
    if response.release is not None:
        response.release()
    return out


def header(response: Response, name: str) -> str | None:
    match = re.search(rb"\r\n" + name.encode() + rb": ([^\r]*)\r\n", response.head, re.IGNORECASE)
    return match.group(1).decode() if match else None


def status_of(call: Any) -> HTTPError:
    with pytest.raises(HTTPError) as info:
        call()
    return info.value


def test_get_small_file_is_prebuilt_and_shared(root: Path) -> None:
    static = responder(root)
    first = static.respond(request(b"/small.txt"))
    assert first.status == 200 and first.body == SMALL and first.length == len(SMALL)
    assert header(first, "Content-Type") == "text/plain; charset=utf-8"
    assert header(first, "Content-Length") == str(len(SMALL))
    assert header(first, "Accept-Ranges") == "bytes"
    st = os.stat(root / "small.txt")
    assert header(first, "ETag") == '"%x-%x"' % (st.st_mtime_ns, len(SMALL))
    assert header(first, "Last-Modified") == http_date(st.st_mtime).decode()
    assert first.head.startswith(b"HTTP/1.1 200 OK\r\nServer: x15g/")
    assert b"Date:" not in first.head and b"Connection:" not in first.head
    assert static.respond(request(b"/small.txt")) is first  # the hit path allocates nothing new
    assert static.cache.hits == 1 and static.cache.misses == 1


def test_head_has_the_same_headers_and_no_body(root: Path) -> None:
    static = responder(root)
    get = static.respond(request(b"/big.bin"))
    body_of(get)
    head = static.respond(request(b"/big.bin", "HEAD"))
    assert head.head == get.head and head.send_body is False and head.length == len(BIG)
    assert head.release is None


def test_large_file_goes_by_sendfile_and_holds_the_fd(root: Path) -> None:
    static = responder(root)
    response = static.respond(request(b"/big.bin"))
    assert isinstance(response.body, FileRange) and response.body.count == len(BIG)
    entry = static.cache.get(b"/big.bin")
    assert entry.refs == 1
    assert body_of(response) == BIG
    assert entry.refs == 0


def test_empty_file(root: Path) -> None:
    response = responder(root).respond(request(b"/empty.txt", range=b"bytes=0-0"))
    assert response.status == 200 and response.body == b"" and header(response, "Content-Length") == "0"


@pytest.mark.parametrize("path", [b"/small.txt", b"/big.bin"])
def test_conditional_get(root: Path, path: bytes) -> None:
    static = responder(root, cache_control=("*.txt=max-age=60", "*=no-cache"))
    full = static.respond(request(path))
    body_of(full)
    etag = header(full, "ETag").encode()
    last_modified = header(full, "Last-Modified").encode()
    for headers in ({"if_none_match": etag}, {"if_none_match": b'W/' + etag}, {"if_modified_since": last_modified}):
        response = static.respond(request(path, **headers))
        assert response.status == 304 and response.send_body is False
        assert header(response, "ETag") == etag.decode()
        assert header(response, "Last-Modified") == last_modified.decode()
        assert header(response, "Cache-Control") == header(full, "Cache-Control")
        assert header(response, "Content-Length") is None
    assert static.respond(request(path, if_none_match=b'"nope"')).status == 200
    assert status_of(lambda: static.respond(request(path, if_match=b'"nope"'))).status == 412
    early = http_date(0)
    assert status_of(lambda: static.respond(request(path, if_unmodified_since=early))).status == 412


def test_cache_control_rules_first_match_wins(root: Path) -> None:
    static = responder(root, cache_control=("/docs/*=no-store", "*.txt=max-age=60", "*=no-cache"))
    assert header(static.respond(request(b"/small.txt")), "Cache-Control") == "max-age=60"
    assert header(static.respond(request(b"/docs/")), "Cache-Control") == "no-store"
    assert header(static.respond(request(b"/empty.txt", "HEAD")), "Cache-Control") == "max-age=60"
    assert header(responder(root).respond(request(b"/small.txt")), "Cache-Control") is None


@pytest.mark.parametrize("path, data", [(b"/small.txt", SMALL), (b"/big.bin", BIG)])
@pytest.mark.parametrize(
    "spec, start, end",
    [(b"bytes=0-0", 0, 0), (b"bytes=3-7", 3, 7), (b"bytes=-4", None, None), (b"bytes=10-", 10, None)],
)
def test_single_range(root: Path, path: bytes, data: bytes, spec: bytes, start: int | None, end: int | None) -> None:
    size = len(data)
    if start is None:
        start, end = size - 4, size - 1
    end = size - 1 if end is None else end
    response = responder(root).respond(request(path, range=spec))
    assert response.status == 206
    assert header(response, "Content-Range") == f"bytes {start}-{end}/{size}"
    assert header(response, "Content-Length") == str(end - start + 1)
    assert body_of(response) == data[start : end + 1]


@pytest.mark.parametrize("path, data", [(b"/small.txt", SMALL), (b"/big.bin", BIG)])
def test_multipart_ranges(root: Path, path: bytes, data: bytes) -> None:
    response = responder(root).respond(request(path, range=b"bytes=0-1, 5-6, -2"))
    assert response.status == 206
    content_type = header(response, "Content-Type")
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("=", 1)[1].encode()
    body = body_of(response)
    assert int(header(response, "Content-Length")) == len(body) == response.length
    size = len(data)
    for start, end in ((0, 1), (5, 6), (size - 2, size - 1)):
        assert b"Content-Range: bytes %d-%d/%d\r\n\r\n%s\r\n" % (start, end, size, data[start : end + 1]) in body
    assert body.startswith(b"--" + boundary + b"\r\n") and body.endswith(b"\r\n--" + boundary + b"--\r\n")


def test_unsatisfiable_range_is_416_with_validators(root: Path) -> None:
    static = responder(root, cache_control=("*=max-age=5",))
    error = status_of(lambda: static.respond(request(b"/small.txt", range=b"bytes=1000-")))
    names = dict(error.headers)
    assert error.status == 416 and names["Content-Range"] == f"bytes */{len(SMALL)}"
    assert "ETag" in names and "Last-Modified" in names and names["Cache-Control"] == "max-age=5"


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"range": b"items=0-1"}, 200),  # unknown unit: ignored
        ({"range": b"bytes=5-1"}, 200),  # malformed: ignored
        ({"range": b"bytes=0-1", "if_range": b'"stale"'}, 200),
        ({"range": b"bytes=0-1", "if_range": b"Sun, 06 Nov 1994 08:49:37 GMT"}, 200),
    ],
)
def test_range_ignored(root: Path, headers: dict[str, bytes], status: int) -> None:
    response = responder(root).respond(request(b"/small.txt", **headers))
    assert response.status == status and body_of(response) == SMALL


def test_if_range_with_the_current_validators(root: Path) -> None:
    static = responder(root)
    full = static.respond(request(b"/small.txt"))
    for validator in (header(full, "ETag"), header(full, "Last-Modified")):
        response = static.respond(request(b"/small.txt", range=b"bytes=0-0", if_range=validator.encode()))
        assert response.status == 206 and body_of(response) == SMALL[:1]


def test_head_ignores_range(root: Path) -> None:
    response = responder(root).respond(request(b"/small.txt", "HEAD", range=b"bytes=0-0"))
    assert response.status == 200 and response.send_body is False


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_405(root: Path, method: str) -> None:
    error = status_of(lambda: responder(root).respond(request(b"/small.txt", method)))
    assert error.status == 405 and dict(error.headers)["Allow"] == "GET, HEAD"


def test_directory_redirect_keeps_query(root: Path) -> None:
    static = responder(root)
    response = static.respond(request(b"/docs?x=1&y=2"))
    assert response.status == 301 and header(response, "Location") == "/docs/?x=1&y=2"
    assert static.respond(request(b"//docs")).status == 301
    assert header(static.respond(request(b"//docs")), "Location") == "/docs/"  # never //host
    head = static.respond(request(b"/docs", "HEAD"))
    assert head.status == 301 and head.send_body is False


def test_directory_index(root: Path) -> None:
    response = responder(root).respond(request(b"/docs/"))
    assert response.status == 200 and body_of(response) == b"<h1>docs</h1>"
    assert header(response, "Content-Type") == "text/html; charset=utf-8"


def test_directory_without_index(root: Path) -> None:
    assert status_of(lambda: responder(root).respond(request(b"/bare/"))).status == 403
    listing = responder(root, autoindex=True).respond(request(b"/bare/"))
    page = body_of(listing)
    assert listing.status == 200 and b"b&lt;&amp;&gt;.txt" in page and b'href="b%3C%26%3E.txt"' in page
    assert page.index(b"sub/") < page.index(b"b&lt;")  # directories first, then files, sorted


@pytest.mark.parametrize(
    "path, status",
    [
        (b"/missing.txt", 404),
        (b"/.secret", 404),
        (b"/small.txt/", 404),
        (b"/../etc/passwd", 400),
        (b"/%2e%2e/etc/passwd", 400),
        (b"/a%2fb", 400),
        (b"/a%00", 400),
        (b"/%c0%ae%c0%ae/", 400),
    ],
)
def test_refusals(root: Path, path: bytes, status: int) -> None:
    assert status_of(lambda: responder(root).respond(request(path))).status == status


def test_missing_file_is_cached_then_noticed(root: Path) -> None:
    static = responder(root, cache_revalidate=0)
    assert status_of(lambda: static.respond(request(b"/new.txt"))).status == 404
    (root / "new.txt").write_bytes(b"new")
    assert body_of(static.respond(request(b"/new.txt"))) == b"new"


@pytest.mark.parametrize(
    "accept, coding, data",
    [
        (None, None, CSS),
        (b"gzip, deflate, br", "br", b"BROTLI-BYTES"),
        (b"gzip", "gzip", gzip.compress(CSS)),
        (b"br;q=0, gzip", "gzip", gzip.compress(CSS)),
        (b"identity", None, CSS),
    ],
)
def test_precompressed_variants(root: Path, accept: bytes | None, coding: str | None, data: bytes) -> None:
    static = responder(root)
    headers = {"accept_encoding": accept} if accept is not None else {}
    response = static.respond(request(b"/a.css", **headers))
    assert response.status == 200 and body_of(response) == (root / ("a.css" + {"br": ".br", "gzip": ".gz", None: ""}[coding])).read_bytes()
    assert header(response, "Content-Encoding") == coding
    assert header(response, "Vary") == "Accept-Encoding"
    assert header(response, "Content-Type") == "text/css; charset=utf-8"
    etag = header(response, "ETag")
    suffix = {"br": '-br"', "gzip": '-gz"', None: '"'}[coding]
    assert etag.endswith(suffix) and (coding is None) == (not etag.endswith(('-br"', '-gz"')))


def test_variant_conditionals_and_ranges(root: Path) -> None:
    static = responder(root)
    gz = static.respond(request(b"/a.css", accept_encoding=b"gzip"))
    etag = header(gz, "ETag").encode()
    not_modified = static.respond(request(b"/a.css", accept_encoding=b"gzip", if_none_match=etag))
    assert not_modified.status == 304 and header(not_modified, "Vary") == "Accept-Encoding"
    # the gzip ETag does not validate the identity variant
    assert static.respond(request(b"/a.css", if_none_match=etag)).status == 200
    part = static.respond(request(b"/a.css", accept_encoding=b"gzip", range=b"bytes=0-1"))
    assert part.status == 206 and body_of(part) == gzip.compress(CSS)[:2]
    assert header(part, "Content-Encoding") == "gzip" and header(part, "Vary") == "Accept-Encoding"
    error = status_of(lambda: static.respond(request(b"/a.css", accept_encoding=b"br", range=b"bytes=999-")))
    assert error.status == 416 and dict(error.headers)["Vary"] == "Accept-Encoding"


def test_no_variants_when_disabled_or_absent(root: Path) -> None:
    off = responder(root, precompressed=False).respond(request(b"/a.css", accept_encoding=b"br"))
    assert header(off, "Content-Encoding") is None and header(off, "Vary") is None
    plain = responder(root).respond(request(b"/small.txt", accept_encoding=b"gzip"))
    assert header(plain, "Vary") is None
    only_gz = responder(root).respond(request(b"/only.js", accept_encoding=b"br, gzip"))
    assert header(only_gz, "Content-Encoding") == "gzip"


def test_sidecar_symlink_out_of_root_is_not_served(root: Path, tmp_path: Path) -> None:
    (tmp_path / "evil.gz").write_bytes(b"SECRET")
    (root / "x.txt").write_bytes(b"x")
    os.symlink(tmp_path / "evil.gz", root / "x.txt.gz")
    for follow in (False, True):
        response = responder(root, follow_symlinks=follow).respond(request(b"/x.txt", accept_encoding=b"gzip"))
        assert body_of(response) == b"x" and header(response, "Content-Encoding") is None


def test_new_sidecar_is_noticed_on_revalidation(root: Path) -> None:
    static = responder(root, cache_revalidate=0)
    assert header(static.respond(request(b"/small.txt", accept_encoding=b"gzip")), "Content-Encoding") is None
    (root / "small.txt.gz").write_bytes(gzip.compress(SMALL))
    assert header(static.respond(request(b"/small.txt", accept_encoding=b"gzip")), "Content-Encoding") == "gzip"


def test_specweb_type_override(root: Path) -> None:
    (root / "file_set").mkdir()
    (root / "file_set" / "class1_3").write_bytes(b"z" * 10)
    settings = default_settings(root=str(root))
    static = StaticResponder(settings, DiskIO(inline=True), type_overrides={settings.specweb_urlroot: "text/plain"})
    assert header(static.respond(request(b"/file_set/class1_3")), "Content-Type") == "text/plain; charset=utf-8"
