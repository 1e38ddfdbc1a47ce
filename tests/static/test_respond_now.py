"""StaticResponder.respond_now: the answers the hub may make itself, and None wherever the full
`respond` would wait (a miss, a revalidation, pages not known resident)."""

from __future__ import annotations

from pathlib import Path

import pytest

from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.messages import FileRange, Request
from x15g.static.responder import StaticResponder


def get(path: bytes, **headers: bytes) -> Request:
    fields = {name.replace("_", "-").encode(): value for name, value in headers.items()}
    return Request("GET", path, path, b"", 11, fields, True)


@pytest.fixture
def responder(tmp_path: Path) -> StaticResponder:
    (tmp_path / "small.txt").write_bytes(b"small\n")
    (tmp_path / "big.bin").write_bytes(b"x" * 200_000)
    return StaticResponder(default_settings(root=str(tmp_path), small_file_size=1024), DiskIO(1))


def test_a_miss_waits_for_the_full_path_then_hits_are_immediate(responder: StaticResponder) -> None:
    assert responder.respond_now(get(b"/small.txt")) is None  # not cached: opening it may block
    full = responder.respond(get(b"/small.txt"))
    now = responder.respond_now(get(b"/small.txt"))
    assert now is full and now.body == b"small\n"
    etag = full.head.split(b"ETag: ")[1].split(b"\r\n")[0]
    assert responder.respond_now(get(b"/small.txt", if_none_match=etag)).status == 304
    assert responder.respond_now(get(b"/small.txt", range=b"bytes=1-2")).body == b"ma"
    with pytest.raises(HTTPError):
        responder.respond_now(get(b"/small.txt", range=b"bytes=100-200"))  # 416, no wait either


def test_a_sendfile_body_is_immediate_only_while_its_pages_are_known_resident(responder: StaticResponder) -> None:
    full = responder.respond(get(b"/big.bin"))  # warms and samples the pages
    assert type(full.body) is FileRange
    full.release()
    entry = responder.cache.peek(b"/big.bin")
    now = responder.respond_now(get(b"/big.bin"))
    assert now is full
    now.release()
    entry.resident_until = 0.0  # not known any more: sampling may wait on the disk
    assert responder.respond_now(get(b"/big.bin")) is None
    entry.fresh_until = 0.0  # the revalidation window passed: the stat may block
    assert responder.respond_now(get(b"/big.bin")) is None
