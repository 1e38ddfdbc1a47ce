"""The SPECweb99-like module over a real `x15g --specweb` process (specweb99-like.md §5, §7.5)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest

from tests.support.server import ServerProcess
from x15g.specweb import fileset, fileset_cli
from x15g.specweb.wrap import wrap

SERVER = b"x15g/0.1.0"
NOW = 1_000_000_000
RESET = "/specweb99?command/Reset&maxload=40&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/&now=%d" % NOW
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

SLEEPER = "#!/bin/sh\nsleep 30\n"


def make_root(base) -> str:
    root = str(base / "docroot")
    assert fileset_cli.main(["--conns", "10", "--dirs", "2", "--root", root]) == 0
    cgi = base / "cgi"
    cgi.mkdir()
    (cgi / "sleep.sh").write_text(SLEEPER)
    (cgi / "sleep.sh").chmod(0o755)
    return root


# The same tests against the module in the workers and in isolated handler processes (--isolate):
# every answer must be byte for byte the same.
@pytest.fixture(scope="module", params=[(1, ()), (2, ()), (1, ("--isolate", "--isolate-procs", "2"))],
                ids=["1worker", "2workers", "isolated"])
def server(request, tmp_path_factory):
    workers, extra = request.param
    if extra and os.geteuid() != 0:
        pytest.skip("--isolate needs the server started as root")
    base = tmp_path_factory.mktemp("sws")
    root = make_root(base)
    with ServerProcess(root, "--specweb", "--cgi-dir", "/cgi/=" + str(base / "cgi"), "--cgi-timeout", "1",
                       *extra, workers=workers) as proc:
        proc.nworkers = workers
        proc.isolated = bool(extra)
        yield proc


def get(server, target: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None):
    conn = server.http(timeout=20)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def reset(server) -> None:
    status, headers, body = get(server, RESET)
    assert status == 200 and body == wrap(RESET.split("?", 1)[1].encode(), b"", SERVER, b"127.0.0.1", b"/specweb99")


def fetch(server) -> bytes:
    status, _, body = get(server, "/specweb99?command/Fetch")
    prefix = wrap(b"command/Fetch", b"", SERVER, b"127.0.0.1", b"/specweb99").split(b"<pre>\n")[0] + b"<pre>\n"
    tail = b"\n</pre>\n</body></html>\n"
    assert status == 200 and body.startswith(prefix) and body.endswith(tail)
    return body[len(prefix):-len(tail)]


def test_every_operation_byte_exact(server) -> None:
    reset(server)
    assert fetch(server) == b"         0\n"
    qs = "/file_set/dir00001/class2_5"
    expected = fileset.file_bytes(1, 2, 5)
    # static
    status, headers, body = get(server, qs)
    assert status == 200 and body == expected
    # standard dynamic and CGI GET
    for script in ("/specweb99", "/cgi-bin/specweb99"):
        status, headers, body = get(server, script + "?" + qs)
        assert status == 200 and headers["Content-Type"] == "text/html" and headers["Date"]
        assert body == wrap(qs.encode(), expected, SERVER, b"127.0.0.1", script.encode())
        assert int(headers["Content-Length"]) == len(body) and "Set-Cookie" not in headers
    # CAD: user 0 after ad 0 -> universal ad 10 = dir00000/class1_1, weight 33, expired
    status, headers, body = get(server, "/specweb99?" + qs, {"Cookie": "my_cookie=user_id=10000&last_ad=0"})
    assert headers["Set-Cookie"] == "found_cookie=Ad_id=10&Ad_weight=33&Expired=1"
    assert body == wrap(qs.encode(), expected.replace(b"dirNNNNN/classX_Y", b"dir00000/class1_1"), SERVER, b"127.0.0.1", b"/specweb99")
    # POST
    form = b"urlroot=/file_set/&dir=00001&class=2&num=5&client=3"
    status, headers, body = get(server, "/specweb99", {"Cookie": "my_cookie=user_id=10039&last_ad=1", **FORM}, "POST", form)
    assert status == 200 and headers["Set-Cookie"] == "my_cookie=10039"
    assert body == wrap(b"", expected, SERVER, b"127.0.0.1", b"/specweb99")
    log = fetch(server)
    assert log[:11] == b"         1\n" and len(log) == 150
    assert log[11:67] == b"         1 " + log[22:33] + log[33:44] + b"    1  2  5          3 "
    assert log[67:] == b"/file_set/dir00001/class2_5".ljust(60) + log[127:128] + log[128:139] + b"     10039\n"
    reset(server)
    assert fetch(server) == b"         0\n"


def _poster(server, jobs: list[tuple[int, int, int, int, int]], errors: list, done: list) -> None:
    conn = server.http(timeout=30)
    try:
        for d, c, f, client, user in jobs:
            form = b"urlroot=/file_set/&dir=%05d&class=%d&num=%d&client=%d" % (d, c, f, client)
            conn.request("POST", "/specweb99", body=form, headers={"Cookie": "my_cookie=user_id=%d&last_ad=7" % user, **FORM})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200 or resp.headers["Set-Cookie"] != "my_cookie=%d" % user:
                errors.append(resp.status)
            else:
                done.append((d, c, f, client, user))
    except Exception as exc:  # pragma: no cover - reported below
        errors.append(repr(exc))
    finally:
        conn.close()


def test_concurrent_posts_land_once_in_order(server) -> None:
    reset(server)
    threads, errors, done = [], [], []
    for t in range(20):
        jobs = [((t + i) % 2, (t * i) % 4, (t + 3 * i) % 9, t, 10000 + (t * 7 + i) % 40) for i in range(10)]
        threads.append(threading.Thread(target=_poster, args=(server, jobs, errors, done)))
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == [] and len(done) == 200
    log = fetch(server)
    assert log[:11] == b"       200\n" and len(log) == 11 + 200 * 139
    seen = Counter()
    for i in range(200):
        rec = log[11 + 139 * i:11 + 139 * (i + 1)]
        assert int(rec[0:10]) == i + 1 and rec[-1:] == b"\n"
        assert abs(int(rec[11:21]) - time.time()) < 120
        d, c, f, client = int(rec[33:38]), int(rec[39:41]), int(rec[42:44]), int(rec[45:55])
        assert rec[56:116] == (b"/file_set/dir%05d/class%d_%d" % (d, c, f)).ljust(60)
        seen[(d, c, f, client, int(rec[128:138]))] += 1
    assert seen == Counter(done)


def test_reset_reaches_every_worker(server) -> None:
    """After a Reset with new tables, every connection (whatever worker takes it) uses them."""
    target = "/specweb99?command/Reset&maxload=40&pttime=0&maxthread=11&exp=0,180&urlroot=/file_set/&now=%d" % NOW
    assert get(server, target)[0] == 200
    for _ in range(12):
        _, headers, _ = get(server, "/specweb99?/file_set/dir00000/class1_0", {"Cookie": "my_cookie=user_id=10000&last_ad=0"})
        assert headers["Set-Cookie"].startswith("found_cookie=Ad_id=11&")
    reset(server)
    pids = set()
    for _ in range(24):
        _, headers, _ = get(server, "/specweb99?/file_set/dir00000/class1_0", {"Cookie": "my_cookie=user_id=10000&last_ad=0"})
        assert headers["Set-Cookie"] == "found_cookie=Ad_id=10&Ad_weight=33&Expired=1"
        stats = get(server, "/specweb99?command/Stats")[2]
        pids.add([line for line in stats.split(b"\n") if line.startswith(b"pid ")][0])
    if server.isolated:  # the module runs in the handlers: any of them may answer
        assert 1 <= len(pids) <= 2
    else:
        assert len(pids) == server.nworkers  # the kernel spread the connections over every worker


def test_cgi_timeout(server) -> None:
    start = time.monotonic()
    status, _, _ = get(server, "/cgi/sleep.sh")
    assert status == 504 and time.monotonic() - start < 10


@pytest.mark.parametrize("method, target, headers, body, status", [
    ("GET", "/specweb99?/file_set/../etc/passwd", {}, None, 400),
    ("GET", "/specweb99?/file_set/dir00000/class9_0", {}, None, 400),
    ("GET", "/specweb99?/file_set/dir00077/class1_0", {}, None, 404),
    ("GET", "/specweb99?command/Reset&maxload=x&pttime=0&maxthread=10&exp=0,180&urlroot=/file_set/", {}, None, 400),
    ("GET", "/specweb99?command/Reset&pttime=0&maxload=1&maxthread=10&exp=0,180&urlroot=/file_set/", {}, None, 400),
    ("GET", "/cgi-bin/specweb99?/file_set/dir00000/class1_x", {}, None, 400),
    ("POST", "/specweb99", {"Cookie": "my_cookie=user_id=10000&last_ad=0"}, b"urlroot=/file_set/&dir=00000&class=1&num=1&client=1&x=2", 400),
    ("POST", "/specweb99", {"Cookie": "my_cookie=user_id=10000&last_ad=0"}, b"urlroot=/file_set/&dir=00000&class=1&num=1&client=1&client=2", 400),
    ("POST", "/specweb99", {"Cookie": "bad"}, b"urlroot=/file_set/&dir=00000&class=1&num=1&client=1", 400),
    ("POST", "/specweb99", {}, b"urlroot=/file_set/&dir=00000&class=1&num=1&client=1", 400),
    ("POST", "/specweb99", {"Cookie": "my_cookie=user_id=10000&last_ad=0"}, b"urlroot=/file_set/&" * 2000, 413),
])
def test_bad_input(server, method, target, headers, body, status) -> None:
    before = fetch(server)
    got, hdrs, text = get(server, target, headers, method, body)
    assert got == status and len(text) < 1000 and b"Traceback" not in text
    assert fetch(server) == before


def test_bad_cookie_cad_reply(server) -> None:
    qs = "/file_set/dir00000/class1_2"
    status, headers, body = get(server, "/specweb99?" + qs, {"Cookie": "my_cookie=user_id=99&last_ad=0"})
    assert status == 200 and headers["Set-Cookie"] == "found_cookie=Ad_id=-1&Ad_weight=0&Expired=1"
    assert body == wrap(qs.encode(), fileset.file_bytes(0, 1, 2), SERVER, b"127.0.0.1", b"/specweb99")
