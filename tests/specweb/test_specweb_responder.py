"""The dynamic module and the CGI GET, called directly (specweb99-like.md §5): every operation."""

from __future__ import annotations

import pytest

from x15g.config import default_settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.messages import Request, Response
from x15g.specweb import fileset
from x15g.specweb.fileset_cli import write_state
from x15g.specweb.responder import SpecwebResponder, make_cgi_responder, peer_ip
from x15g.specweb.wrap import wrap

SERVER = b"x15g/0.1.0"
NOW = 1_000_000_000
RESET = b"command/Reset&maxload=10&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/&now=%d" % NOW


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    base = tmp_path_factory.mktemp("sw")
    root = str(base / "docroot")
    fileset.generate(root, 2)
    write_state(root, 10)
    return root


@pytest.fixture
def responder(docroot):
    settings = default_settings(root=docroot)
    r = SpecwebResponder(settings, DiskIO(threads=4))
    assert body_of(r.respond(req("GET", b"/specweb99?" + RESET))) == wrap(RESET, b"", SERVER, b"127.0.0.1", b"/specweb99")
    return r


def req(method: str, target: bytes, headers: dict | None = None, body: bytes = b"", peer: str = "127.0.0.1:40000") -> Request:
    path, _, query = target.partition(b"?")
    return Request(method, target, path, query, 11, headers or {}, True,
                   content_length=len(body) if body else None, body=body, peer=peer)


def body_of(resp: Response) -> bytes:
    body = resp.body if isinstance(resp.body, bytes) else b"".join(resp.body)
    assert resp.status == 200 and resp.length == len(body)
    assert b"\r\nContent-Length: %d\r\n" % len(body) in resp.head
    return body


def headers_of(resp: Response) -> dict[str, str]:
    lines = resp.head.decode("latin-1").split("\r\n")[1:-1]
    return dict(line.split(": ", 1) for line in lines)


def status_of(responder, request: Request) -> int:
    try:
        return responder.respond(request).status
    except HTTPError as exc:
        return exc.status


@pytest.mark.parametrize("d, c, f", [(0, 0, 0), (1, 1, 4), (0, 2, 8), (1, 3, 8)])
def test_standard_get(responder, d: int, c: int, f: int) -> None:
    qs = ("/file_set/dir%05d/class%d_%d" % (d, c, f)).encode()
    resp = responder.respond(req("GET", b"/specweb99?" + qs))
    assert body_of(resp) == wrap(qs, fileset.file_bytes(d, c, f), SERVER, b"127.0.0.1", b"/specweb99")
    hdrs = headers_of(resp)
    assert hdrs["Content-Type"] == "text/html" and "Set-Cookie" not in hdrs
    assert resp.head.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("peer, ip", [("127.0.0.1:5", b"127.0.0.1"), ("10.0.0.9", b"10.0.0.9"),
                                      ("[::1]:8080", b"::1"), ("::1", b"::1"), ("[fe80::1]", b"fe80::1")])
def test_remote_addr(responder, peer: str, ip: bytes) -> None:
    assert peer_ip(peer) == ip
    qs = b"/file_set/dir00000/class0_1"
    assert body_of(responder.respond(req("GET", b"/specweb99?" + qs, peer=peer))) == wrap(qs, fileset.file_bytes(0, 0, 1), SERVER, ip, b"/specweb99")


@pytest.mark.parametrize("qs, status", [
    (b"", 400), (b"/file_set/dir0000/class1_1", 400), (b"/file_set/dir00000/class4_0", 400),
    (b"/file_set/dir00000/class1_9", 400), (b"/file_set/../etc/passwd", 400), (b"/etc/passwd", 400),
    (b"/file_set/dir00000/class1_1&x=1", 400), (b"file_set/dir00000/class1_1", 400),
    (b"/file_set/dir00000/class1_1/", 400), (b"/file_set/dir00005/class1_1", 404),
    (b"command/Nope", 400), (b"command/Fetch&x", 400),
])
def test_bad_get(responder, qs: bytes, status: int) -> None:
    assert status_of(responder, req("GET", b"/specweb99?" + qs)) == status
    assert status_of(responder, req("GET", b"/specweb99?" + qs, {b"cookie": b"my_cookie=user_id=10000&last_ad=0"})) == status


def test_cad_get_substitutes_ads(responder) -> None:
    qs = b"/file_set/dir00001/class2_8"
    responder.respond(req("GET", b"/specweb99?" + qs))  # cached by a standard GET first
    # user 0 after ad 0: universal ad 10 (33, expired); see test_specweb_tables for the arithmetic
    resp = responder.respond(req("GET", b"/specweb99?" + qs, {b"cookie": b"my_cookie=user_id=10000&last_ad=0"}))
    assert headers_of(resp)["Set-Cookie"] == "found_cookie=Ad_id=10&Ad_weight=33&Expired=1"
    expected = fileset.file_bytes(1, 2, 8).replace(b"dirNNNNN/classX_Y", b"dir00000/class1_1")
    assert body_of(resp) == wrap(qs, expected, SERVER, b"127.0.0.1", b"/specweb99")
    assert expected.count(b"dir00000/class1_1") == 2
    resp = responder.respond(req("GET", b"/specweb99?" + qs, {b"cookie": b"my_cookie=user_id=10000&last_ad=370"}))
    assert headers_of(resp)["Set-Cookie"] == "found_cookie=Ad_id=34&Ad_weight=15&Expired=0"
    # the cached copy is untouched
    qs0 = b"/file_set/dir00001/class2_8"
    assert body_of(responder.respond(req("GET", b"/specweb99?" + qs0))) == wrap(qs0, fileset.file_bytes(1, 2, 8), SERVER, b"127.0.0.1", b"/specweb99")


@pytest.mark.parametrize("c, f", [(0, 3), (3, 0)])
def test_cad_get_leaves_class_0_and_3(responder, c: int, f: int) -> None:
    qs = ("/file_set/dir00000/class%d_%d" % (c, f)).encode()
    resp = responder.respond(req("GET", b"/specweb99?" + qs, {b"cookie": b"my_cookie=user_id=10002&last_ad=10"}))
    assert headers_of(resp)["Set-Cookie"] == "found_cookie=Ad_id=34&Ad_weight=18&Expired=0"
    assert body_of(resp) == wrap(qs, fileset.file_bytes(0, c, f), SERVER, b"127.0.0.1", b"/specweb99")


@pytest.mark.parametrize("cookie", [b"", b"my_cookie=user_id=9999&last_ad=0", b"my_cookie=user_id=10010&last_ad=0",
                                    b"my_cookie=user_id=10000", b"my_cookie=user_id=x&last_ad=1",
                                    b"my_cookie=user_id=10000&last_ad=1; other=1", b"junk"])
def test_cad_get_bad_cookie(responder, cookie: bytes) -> None:
    qs = b"/file_set/dir00000/class1_0"
    resp = responder.respond(req("GET", b"/specweb99?" + qs, {b"cookie": cookie}))
    assert headers_of(resp)["Set-Cookie"] == "found_cookie=Ad_id=-1&Ad_weight=0&Expired=1"
    assert body_of(resp) == wrap(qs, fileset.file_bytes(0, 1, 0), SERVER, b"127.0.0.1", b"/specweb99")


POST_BODY = b"urlroot=/file_set/&dir=00001&class=1&num=3&client=7"
COOKIE = {b"cookie": b"my_cookie=user_id=10003&last_ad=5", b"content-type": b"application/x-www-form-urlencoded"}


def fetch(responder) -> bytes:
    body = body_of(responder.respond(req("GET", b"/specweb99?command/Fetch")))
    prefix = wrap(b"command/Fetch", b"", SERVER, b"127.0.0.1", b"/specweb99")
    head, tail = prefix.split(b"<pre>\n")
    assert body.startswith(head + b"<pre>\n") and body.endswith(tail)
    return body[len(head) + 6:len(body) - len(tail)]


def test_post_then_fetch(responder) -> None:
    assert fetch(responder) == b"         0\n"
    resp = responder.respond(req("POST", b"/specweb99", COOKIE, POST_BODY))
    assert headers_of(resp)["Set-Cookie"] == "my_cookie=10003"
    assert body_of(resp) == wrap(b"", fileset.file_bytes(1, 1, 3), SERVER, b"127.0.0.1", b"/specweb99")
    reordered = b"client=8&num=0&class=0&dir=0&urlroot=/file_set/"
    responder.respond(req("POST", b"/specweb99", COOKIE, reordered))
    log = fetch(responder)
    assert len(log) == 11 + 2 * 139 and log[:11] == b"         2\n"
    rec1, rec2 = log[11:150], log[150:]
    assert rec1[:10] == b"         1" and rec2[:10] == b"         2"
    assert rec1[33:56] == b"    1  1  3          7 " and rec1[56:116] == b"/file_set/dir00001/class1_3".ljust(60)
    assert rec1[-11:] == b"     10003\n" and rec2[33:56] == b"    0  0  0          8 "
    responder.respond(req("GET", b"/specweb99?" + RESET))
    assert fetch(responder) == b"         0\n"


@pytest.mark.parametrize("body, headers", [
    (b"urlroot=/file_set/&dir=00001&class=1&num=3", COOKIE),  # missing key
    (POST_BODY + b"&client=8", COOKIE),  # duplicate
    (POST_BODY + b"&extra=1", COOKIE),  # unknown key
    (b"urlroot=/other/&dir=00001&class=1&num=3&client=7", COOKIE),
    (b"urlroot=/file_set/&dir=0000x&class=1&num=3&client=7", COOKIE),
    (b"urlroot=/file_set/&dir=00001&class=4&num=3&client=7", COOKIE),
    (b"urlroot=/file_set/&dir=00001&class=1&num=9&client=7", COOKIE),
    (b"urlroot=/file_set/&dir=00009&class=1&num=3&client=7", COOKIE),  # no such directory
    (b"urlroot=/file_set/&dir=00001&class=1&num=3&client=-7", COOKIE),
    (b"urlroot=%2Ffile_set%2F&dir=00001&class=1&num=3&client=7", COOKIE),  # not percent-decoded
    (POST_BODY, {}),  # no cookie
    (POST_BODY, {b"cookie": b"my_cookie=user_id=10010&last_ad=5"}),  # user out of range
    (POST_BODY, {b"cookie": b"my_cookie=user_id=10003"}),
    (b"", COOKIE),
])
def test_bad_post(responder, body: bytes, headers: dict) -> None:
    assert status_of(responder, req("POST", b"/specweb99", headers, body)) == 400
    assert fetch(responder) == b"         0\n"


@pytest.mark.parametrize("qs", [
    b"command/Reset&maxload=10&pttime=0&maxthread=10&exp=0,180",
    b"command/Reset&pttime=0&maxload=10&maxthread=10&exp=0,180&urlroot=/file_set/",
    b"command/Reset&maxload=x&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/",
    b"command/Reset&maxload=10&pttime=0&maxthread=10&exp=0&urlroot=/file_set/",
    b"command/Reset&maxload=10&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/&now=soon",
    b"command/Reset&maxload=10&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/&now=1&x=2",
    b"command/Reset&maxload=99999999&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/",
    b"command/Reset&maxload=10&pttime=9999999999&maxthread=10&exp=0,180&urlroot=/file_set/",
])
def test_bad_reset(responder, qs: bytes) -> None:
    assert status_of(responder, req("GET", b"/specweb99?" + qs)) == 400


def test_reset_is_seen_by_another_worker(responder, docroot) -> None:
    other = SpecwebResponder(default_settings(root=docroot), DiskIO(threads=2))
    cookie = {b"cookie": b"my_cookie=user_id=10000&last_ad=0"}
    qs = b"/file_set/dir00000/class1_0"
    assert headers_of(other.respond(req("GET", b"/specweb99?" + qs, cookie)))["Set-Cookie"].startswith("found_cookie=Ad_id=10&")
    # maxthread 11: universal ads become 11, 35, ...; 20 users
    reset = b"command/Reset&maxload=20&pttime=0&maxthread=11&exp=0,180&urlroot=/file_set/&now=%d" % NOW
    responder.respond(req("GET", b"/specweb99?" + reset))
    assert headers_of(other.respond(req("GET", b"/specweb99?" + qs, cookie)))["Set-Cookie"].startswith("found_cookie=Ad_id=11&")
    bad = {b"cookie": b"my_cookie=user_id=10019&last_ad=0"}
    assert "Ad_id=-1" not in headers_of(other.respond(req("GET", b"/specweb99?" + qs, bad)))["Set-Cookie"]


def test_stats_and_methods(responder) -> None:
    resp = responder.respond(req("GET", b"/specweb99?command/Stats"))
    assert b"Content-Type: text/plain" in resp.head and b"reset 1\n" in resp.body
    assert status_of(responder, req("PUT", b"/specweb99?" + RESET)) == 405
    head = responder.respond(req("HEAD", b"/specweb99?/file_set/dir00000/class0_0"))
    assert head.send_body is False and head.length == len(wrap(b"/file_set/dir00000/class0_0", fileset.file_bytes(0, 0, 0), SERVER, b"127.0.0.1", b"/specweb99"))


def test_cgi_get_matches_dynamic_get(responder, docroot) -> None:
    cgi = make_cgi_responder(default_settings(root=docroot))
    for d, c, f in ((0, 1, 0), (1, 3, 2)):
        qs = b"/file_set/dir%05d/class%d_%d" % (d, c, f)
        resp = cgi.respond(req("GET", b"/cgi-bin/specweb99?" + qs, peer="[::1]:999"))
        assert body_of(resp) == wrap(qs, fileset.file_bytes(d, c, f), SERVER, b"::1", b"/cgi-bin/specweb99")
        assert headers_of(resp)["Content-Type"] == "text/html"
    for qs, status in ((b"/file_set/../x", 400), (b"", 400), (b"/file_set/dir00009/class1_0", 404)):
        resp = cgi.respond(req("GET", b"/cgi-bin/specweb99?" + qs))
        assert resp.status == status


def test_respond_now_answers_in_memory_gets_only(responder) -> None:
    """What the connection may answer from the hub: a dynamic or CAD GET whose file is cached and
    whose tables need no stat; None (the greenlet's respond) for misses, commands and POSTs."""
    qs = b"/file_set/dir00001/class1_3"
    cookie = {b"cookie": b"my_cookie=user_id=10000&last_ad=370"}
    assert responder.respond_now(req("GET", b"/specweb99?" + qs)) is None  # file not read yet
    full = responder.respond(req("GET", b"/specweb99?" + qs))
    now = responder.respond_now(req("GET", b"/specweb99?" + qs))
    assert now is not None and body_of(now) == body_of(full)
    full_cad = responder.respond(req("GET", b"/specweb99?" + qs, cookie))
    now_cad = responder.respond_now(req("GET", b"/specweb99?" + qs, cookie))
    assert now_cad is not None and body_of(now_cad) == body_of(full_cad)
    assert headers_of(now_cad)["Set-Cookie"] == headers_of(full_cad)["Set-Cookie"]
    assert responder.respond_now(req("GET", b"/specweb99?" + RESET)) is None
    assert responder.respond_now(req("POST", b"/specweb99", body=b"x")) is None
    responder.tables._checked = 0.0  # a stat of the state files is due: that may wait
    assert responder.respond_now(req("GET", b"/specweb99?" + qs, cookie)) is None
    with pytest.raises(HTTPError):
        responder.respond_now(req("GET", b"/specweb99?/file_set/../etc"))  # 400 needs no wait
