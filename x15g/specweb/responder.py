"""The SPECweb99-like dynamic module at DYN (`/specweb99`) and its CGI twin (specweb99-like.md §5).

`SpecwebResponder.respond` dispatches on the request: POST -> §5.6; `GET DYN?command/...` ->
§5.7 (Reset, Fetch, and our Stats); a GET with any Cookie header -> CAD (§5.5); otherwise the
standard dynamic GET (§5.3). Every success is 200 `text/html` with an exact Content-Length;
malformed input raises HTTPError(400), a missing file 404. File bytes and tag offsets come from a
FileCache, the tables from a TableStore shared with other workers through the state directory,
POSTs go to the PostLog.

File paths: a query string or a POST `urlroot` names a path relative to DOCROOT (§5.3), so the
file read is `DOCROOT + path`; with the default URLROOT `/file_set/` this is the file set of §2.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter

from x15g import SERVER_SOFTWARE
from x15g.cgi.runner import CgiResponder, split_peer
from x15g.config import Settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.messages import BodyPart, Request, Response
from x15g.http.spool import spool
from x15g.http.writer import build_head
from x15g.specweb.filecache import FileCache
from x15g.specweb.postlog import PostLog
from x15g.specweb.state import POST_LOG_FILE, TableStore
from x15g.specweb.tables import ad_field, cadgen, select_ad, upfgen
from x15g.specweb.wrap import wrap_parts

DYN = "/specweb99"
CGI = "/cgi-bin/specweb99"
MAX_USERS = 1_000_000  # a Reset may not make User.Personality larger than 15 MB
JOIN_BELOW = 32 * 1024  # bodies smaller than this are joined into one bytes; larger go as parts
_SERVER = SERVER_SOFTWARE.encode()
_COOKIE = re.compile(rb"my_cookie=user_id=(\d{1,18})&last_ad=(\d{1,4000})")
_RESET = re.compile(
    rb"command/Reset&maxload=(\d{1,10})&pttime=(\d{1,10})&maxthread=(\d{1,10})"
    rb"&exp=(\d{1,10}),(\d{1,10})&urlroot=([^&]*)(?:&now=(\d{1,10}))?"
)
_POST_KEYS = (b"urlroot", b"dir", b"class", b"num", b"client")
# A POST body is five short fields (~60 bytes); longer ones are refused (413) as they are read,
# so no POST body is held whole in memory (the connection hands this module the body's stream).
MAX_POST_BODY = 16 * 1024
_ERROR_COOKIE = b"Set-Cookie: found_cookie=Ad_id=-1&Ad_weight=0&Expired=1\r\n"
# Every reply is a 200 text/html: its status line and fixed fields made once (writer.build_head).
_HTML_HEAD = build_head(200, (("Content-Type", "text/html"),), None)


class _WouldWait(Exception):
    """respond_now: this answer needs a disk read or a revalidation; `respond` makes it."""


def peer_ip(peer: str) -> bytes:
    """The client address for REMOTE_ADDR from `ip:port`, `[v6]:port` or a bare address."""
    return split_peer(peer)[0].encode()


class SpecwebResponder:
    """The dynamic handler DYN: standard and CAD GET, POST, and the housekeeping commands."""

    streams_body = True  # a POST body is read here, bounded by MAX_POST_BODY

    def __init__(self, settings: Settings, disk: DiskIO) -> None:
        self.root = os.fsencode(settings.root)
        self.urlroot = settings.specweb_urlroot.encode()
        state_dir = settings.specweb_state
        assert state_dir is not None  # config.finish fills in ROOT/../specweb_state
        self.tables = TableStore(state_dir, disk)
        self.post_log = PostLog(os.path.join(state_dir, POST_LOG_FILE), disk, settings.post_log_sync)
        self.files = FileCache(disk, max(settings.cache_memory, 16 * 1024 * 1024),
                               settings.cache_revalidate)
        self.refreshers = [self.files]  # kept fresh ahead of time by whoever runs this module
        self._path_re = re.compile(re.escape(self.urlroot) + rb"dir(\d{5})/class([0-3])_([0-8])")
        self.counters: Counter[str] = Counter()

    def respond(self, request: Request) -> Response:
        """Answer one request to DYN (see the module docstring for the dispatch)."""
        try:
            if request.method == "POST":
                return self._post(request)
            if request.method not in ("GET", "HEAD"):
                raise HTTPError(405, "method not allowed", headers=(("Allow", "GET, HEAD, POST"),))
            qs = request.query
            if qs.startswith(b"command/"):
                return self._command(request, qs)
            if request.header(b"cookie") is not None:
                return self._cad_get(request, qs)
            return self._standard_get(request, qs)
        except HTTPError:
            self.counters["errors"] += 1
            raise

    def respond_now(self, request: Request) -> Response | None:
        """The standard dynamic GET or CAD GET when its file and the tables are in memory and
        need no revalidation (the connection then answers from the hub); None for everything
        else (POST, commands, a miss, a due stat), which `respond` answers in a greenlet."""
        if request.method != "GET" and request.method != "HEAD":
            return None
        qs = request.query
        if qs.startswith(b"command/"):
            return None
        try:
            if request.header(b"cookie") is not None:
                return self._cad_get(request, qs, wait=False)
            return self._standard_get(request, qs, wait=False)
        except _WouldWait:
            return None
        except HTTPError:
            self.counters["errors"] += 1
            raise

    # --- helpers ---

    def _file(self, path: bytes, with_tags: bool = False, wait: bool = True):  # -> CachedFile
        if wait:
            return self.files.get(os.fsdecode(self.root + path), with_tags)
        entry = self.files.peek(os.fsdecode(self.root + path), with_tags)
        if entry is None:
            raise _WouldWait()
        return entry

    def _checked_path(self, qs: bytes) -> tuple[bytes, int]:
        """The validated file path of a dynamic GET and its class (400 on anything else)."""
        match = self._path_re.fullmatch(qs)
        if match is None or b".." in qs:
            raise HTTPError(400, "bad file path")
        return qs, int(match.group(2))

    def _reply(self, request: Request, qs: bytes, body: bytes | list[bytes], fields: bytes = b"") -> Response:
        """200 text/html with WRAP(qs, body); `body` may be a list of parts (no copy); `fields`
        are more header lines, made here from numbers (no CR or LF can reach them)."""
        prefix, tail = wrap_parts(qs, _SERVER, peer_ip(request.peer), request.path)
        parts = [prefix] + (body if isinstance(body, list) else [body]) + [tail]
        length = sum(len(p) for p in parts)
        head = b"%s%sContent-Length: %d\r\n" % (_HTML_HEAD, fields, length)
        out: bytes | list[BodyPart] = b"".join(parts) if length < JOIN_BELOW else [*parts]
        return Response(200, head, out, length, send_body=request.method != "HEAD")

    def _user(self, cookie: bytes | None, wait: bool = True):  # -> (U, L, tables) or None
        match = _COOKIE.fullmatch(cookie) if cookie is not None else None
        if match is None:
            return None
        u = int(match.group(1))
        tables = self.tables.current() if wait else self.tables.current_now()
        if tables is None:
            raise _WouldWait()
        if not 0 <= u - 10000 < len(tables.users) or tables.ads is None:
            return None
        return u, int(match.group(2)), tables

    # --- §5.3 and §5.5 ---

    def _standard_get(self, request: Request, qs: bytes, wait: bool = True) -> Response:
        path, _ = self._checked_path(qs)
        entry = self._file(path, wait=wait)
        self.counters["standard_get"] += 1
        return self._reply(request, qs, entry.data)

    def _cad_get(self, request: Request, qs: bytes, wait: bool = True) -> Response:
        path, cls = self._checked_path(qs)
        entry = self._file(path, with_tags=cls in (1, 2), wait=wait)
        found = self._user(request.header(b"cookie"), wait)  # before counting: it may have to wait
        self.counters["cad_get"] += 1
        if found is None:
            self.counters["cad_bad_cookie"] += 1
            return self._reply(request, qs, entry.data, _ERROR_COOKIE)
        u, last_ad, tables = found
        ad, weight, expired = select_ad(tables.users[u - 10000], last_ad, tables.ads, tables.now())
        cookie = b"Set-Cookie: found_cookie=Ad_id=%d&Ad_weight=%d&Expired=%d\r\n" % (ad, weight, expired)
        return self._reply(request, qs, substitute(entry.data, entry.offsets, ad_field(ad)), cookie)

    # --- §5.6 ---

    def _post(self, request: Request) -> Response:
        reader = request.body_reader
        body = request.body if reader is None else spool(reader, MAX_POST_BODY, limit=MAX_POST_BODY).data
        if len(body) > MAX_POST_BODY:  # read whole by someone else (an isolated handler's request)
            raise HTTPError(413, "request body too large", close=True)
        values = parse_post_body(body)
        if values[b"urlroot"] != self.urlroot:
            raise HTTPError(400, "wrong urlroot")
        d, cls, num, client = (_number(values[k], 10) for k in (b"dir", b"class", b"num", b"client"))
        if d >= 100000 or cls > 3 or num > 8:
            raise HTTPError(400, "no such file in the file set")
        filename = self.urlroot + b"dir%05d/class%d_%d" % (d, cls, num)
        try:
            entry = self._file(filename)
        except HTTPError:
            raise HTTPError(400, "no such file") from None
        with self.tables.lock:  # a Reset in this process waits for the append (and vice versa)
            found = self._user(request.header(b"cookie"))
            if found is None:
                raise HTTPError(400, "missing or bad cookie")
            u = found[0]
            self.post_log.append(int(time.time()), os.getpid(), d, cls, num, client, filename,
                                 id(_current()) % 10**10, u)
        self.counters["post"] += 1
        return self._reply(request, b"", entry.data, b"Set-Cookie: my_cookie=%d\r\n" % u)

    # --- §5.7 ---

    def _command(self, request: Request, qs: bytes) -> Response:
        if qs == b"command/Fetch":
            self.counters["fetch"] += 1
            return self._reply(request, qs, self.post_log.read())
        if qs == b"command/Stats":
            return self._stats(request)
        match = _RESET.fullmatch(qs)
        if match is None:
            raise HTTPError(400, "bad command")
        maxload, pttime, maxthread, e1, e2 = (int(match.group(i)) for i in range(1, 6))
        clock = int(match.group(7)) if match.group(7) is not None else None
        if max(maxload, maxthread) > MAX_USERS:
            raise HTTPError(400, "too many users")
        ads = cadgen(pttime, maxthread, e1, e2, clock if clock is not None else int(time.time()))
        if len(ads) != 360 * 39:
            raise HTTPError(400, "pttime or now out of range")
        self.tables.reset(upfgen(maxload, maxthread), ads, clock, self.post_log)
        self.counters["reset"] += 1
        return self._reply(request, qs, b"")

    def _stats(self, request: Request) -> Response:
        counters = dict(self.counters, cache_hits=self.files.hits, cache_misses=self.files.misses,
                        users=len(self.tables.current().users), generation=self.tables.generation(),
                        pid=os.getpid())
        body = "".join("%s %s\n" % item for item in sorted(counters.items())).encode()
        head = build_head(200, (("Content-Type", "text/plain"),), len(body))
        return Response(200, head, body, len(body), send_body=request.method != "HEAD")


def _current():
    import gevent

    return gevent.getcurrent()


def _number(value: bytes, digits: int) -> int:
    if not value.isdigit() or len(value) > digits:
        raise HTTPError(400, "bad number")
    return int(value)


def parse_post_body(body: bytes) -> dict[bytes, bytes]:
    """The five keys of a POST body in any order (§5.6); duplicates, unknown or missing keys: 400."""
    values: dict[bytes, bytes] = {}
    for pair in body.split(b"&"):
        key, sep, value = pair.partition(b"=")
        if not sep or key not in _POST_KEYS or key in values:
            raise HTTPError(400, "bad POST key")
        values[key] = value
    if len(values) != len(_POST_KEYS):
        raise HTTPError(400, "missing POST key")
    return values


def substitute(data: bytes, offsets: tuple[int, ...], field: bytes) -> bytes:
    """`data` with the 17-byte ad field at each offset replaced by `field` (a new bytes)."""
    if not offsets:
        return data
    parts: list[bytes] = []
    pos = 0
    for off in offsets:
        parts += (data[pos:off], field)
        pos = off + len(field)
    parts.append(data[pos:])
    return b"".join(parts)


def make_cgi_responder(settings: Settings) -> CgiResponder:
    """The CGI GET at CGI (§5.4): a fresh `python -S cgi_program.py` per request.

    `-S` skips site (the package is found through PYTHONPATH instead), and the program avoids
    `re`, so a request costs about one bare interpreter start-up.
    """
    import x15g
    from x15g.specweb import cgi_program

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(x15g.__file__)))
    return CgiResponder(
        settings, CGI, program=[sys.executable, "-S", os.path.abspath(cgi_program.__file__)],
        extra_env={"PYTHONPATH": package_parent, "SPECWEB_URLROOT": settings.specweb_urlroot},
    )


CgiSpecwebResponder = make_cgi_responder
