"""Byte-for-byte answer checks and the post-log check of the SPECweb99-like client (§7)."""

import pytest

from loadtests.specweb_checks import (
    AdExpectation, FileCache, check_cad, check_dynamic, check_post, check_post_log, check_static,
    parse_found_cookie, substitute)
from x15g.specweb.fileset import file_bytes, tag_offsets
from x15g.specweb.postlog import header, record
from x15g.specweb.tables import ad_field
from x15g.specweb.wrap import wrap

SERVER, IP, DYN, CGI = b"x15g/0.1.0", b"127.0.0.1", b"/specweb99", b"/cgi-bin/specweb99"
QS = b"/file_set/dir00001/class1_4"


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.fixture(scope="module")
def files():
    return FileCache(1999)


def test_file_cache_rebuilds_and_evicts():
    cache = FileCache(1999, max_bytes=30_000)
    a = cache.get(0, 1, 8)
    assert a == file_bytes(0, 1, 8) and len(a) == 9216
    cache.get(0, 2, 1)  # 20480 bytes: pushes the first out
    cache.get(0, 1, 0)
    assert cache.bytes <= 30_000 or len(cache._files) == 1


def test_substitute_sets_every_tag_field():
    data = file_bytes(0, 2, 3)
    out = substitute(data, 77)
    offs = tag_offsets(data)
    assert len(offs) == 2 and len(out) == len(data)
    assert all(out[o:o + 17] == ad_field(77) for o in offs)
    assert b"dirNNNNN/classX_Y" not in out
    assert substitute(file_bytes(0, 0, 3), 5) == file_bytes(0, 0, 3)


@pytest.mark.parametrize("status,mutate,expected", [
    (200, None, None), (404, None, "static status"), (200, 0, "static body mismatch"),
    (200, 5000, "static body mismatch"), (200, -1, "static body mismatch"),
])
def test_check_static(files, status, mutate, expected):
    good = files.get(1, 1, 4)
    body = good if mutate is None else flip(good, mutate % len(good))
    assert check_static(status, body, good) == expected
    assert check_static(200, good[:-1], good) == "static body mismatch"


@pytest.mark.parametrize("op,script", [("dynamic GET", DYN), ("CGI GET", CGI)])
def test_check_dynamic(files, op, script):
    f = files.get(1, 1, 4)
    good = wrap(QS, f, SERVER, IP, script)
    assert check_dynamic(op, 200, [], good, QS, script, f) is None
    assert check_dynamic(op, 400, [], good, QS, script, f) == f"{op} status"
    assert check_dynamic(op, 200, [], flip(good, len(good) // 2), QS, script, f) == f"{op} body mismatch"
    assert check_dynamic(op, 200, [], wrap(b"/file_set/x", f, SERVER, IP, script), QS, script, f) == f"{op} query_string"
    assert check_dynamic(op, 200, [], good[:-2], QS, script, f) == f"{op} wrapper"
    assert check_dynamic(op, 200, [], good.replace(b"<html>", b"<HTML>"), QS, script, f) == f"{op} wrapper"
    assert check_dynamic(op, 200, ["found_cookie=Ad_id=1&Ad_weight=1&Expired=0"], good, QS, script, f) == f"{op} found_cookie"


def test_found_cookie_parse():
    assert parse_found_cookie(["found_cookie=Ad_id=12&Ad_weight=33&Expired=1"]) == (12, 33, 1)
    assert parse_found_cookie(["found_cookie=Ad_id=12&Ad_weight=33"]) is None
    assert parse_found_cookie([]) is None
    assert parse_found_cookie(["found_cookie=Ad_id=1&Ad_weight=1&Expired=0"] * 2) is None


@pytest.mark.parametrize("cls", [0, 1, 2, 3])
def test_check_cad(files, cls):
    qs = b"/file_set/dir00000/class%d_2" % cls
    want = AdExpectation(48, 33, 0)
    cookie = ["found_cookie=Ad_id=48&Ad_weight=33&Expired=0"]
    x = substitute(files.get(0, cls, 2), 48)
    good = wrap(qs, x, SERVER, IP, DYN)
    assert check_cad(200, cookie, good, qs, DYN, files, (0, cls, 2), want) is None
    assert check_cad(200, [], good, qs, DYN, files, (0, cls, 2), want) == "CAD GET set-cookie"
    assert check_cad(200, ["found_cookie=Ad_id=72&Ad_weight=33&Expired=0"], good, qs, DYN, files, (0, cls, 2),
                     want) == "CAD GET ad selection"
    assert check_cad(200, ["found_cookie=Ad_id=48&Ad_weight=33&Expired=1"], good, qs, DYN, files, (0, cls, 2),
                     AdExpectation(48, 33, 0, either_expired=True)) is None
    assert check_cad(200, cookie, flip(good, len(good) - 100), qs, DYN, files, (0, cls, 2), want) == "CAD GET body mismatch"
    if cls in (1, 2):
        unsubstituted = wrap(qs, files.get(0, cls, 2), SERVER, IP, DYN)
        assert check_cad(200, cookie, unsubstituted, qs, DYN, files, (0, cls, 2), want) == "CAD GET tags"


def test_check_post(files):
    f = files.get(2, 0, 4)
    good = wrap(b"", f, SERVER, IP, DYN)
    assert check_post(200, ["my_cookie=10003"], good, DYN, 10003, f) is None
    assert check_post(200, ["my_cookie=10004"], good, DYN, 10003, f) == "POST set-cookie"
    assert check_post(200, [], good, DYN, 10003, f) == "POST set-cookie"
    assert check_post(400, ["my_cookie=10003"], good, DYN, 10003, f) == "POST status"
    assert check_post(200, ["my_cookie=10003"], flip(good, len(good) - 50), DYN, 10003, f) == "POST body mismatch"


def make_log(recs):
    body = b"".join(record(n, 1700000000, 42, d, c, f, t, "/file_set/dir%05d/class%d_%d" % (d, c, f), 7, u)
                    for n, (d, c, f, t, u) in enumerate(recs, 1))
    return header(len(recs)) + body


RECS = [(0, 1, 4, 3, 10003), (2, 0, 0, 1, 10001), (0, 1, 4, 3, 10003)]


@pytest.mark.parametrize("log,confirmed,pending,problem", [
    (make_log(RECS), RECS, [], None),
    (make_log(RECS[::-1]), RECS, [], None),  # order of records is free, the multiset counts
    (make_log([]), [], [], None),
    (make_log(RECS), RECS[:2], [RECS[2]], None),  # an in-flight POST that was logged
    (make_log(RECS[:2]), RECS[:2], [RECS[2]], None),  # ... or was not
    (make_log(RECS[:2]), RECS, [], "lacks 1"),
    (make_log(RECS), RECS[:2], [], "never sent"),
    (make_log(RECS)[:-1], RECS, [], "size"),
    (header(5) + make_log(RECS)[11:], RECS, [], "header count"),
    (make_log(RECS).replace(b"         2 17", b"         9 17"), RECS, [], "numbers"),
    (make_log(RECS).replace(b"/file_set/dir00002", b"/file_sex/dir00002"), RECS, [], "filename"),
])
def test_post_log_check(log, confirmed, pending, problem):
    problems = check_post_log(log, confirmed, pending)
    if problem is None:
        assert problems == []
    else:
        assert problems and any(problem in p for p in problems), problems
