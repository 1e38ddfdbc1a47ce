"""Byte-for-byte validation of SPECweb99-like answers (specweb99-like.md §7): pure, no I/O.

Every check returns None when the answer is right, or the name of the first failed check (for
example "static body mismatch", "CAD GET set-cookie"); the locustfile reports that name as the
locust failure, so the UI and the summary count errors per check. Expected bodies are rebuilt with
the server's own generator functions (`x15g.specweb`), never re-implemented here, and cached.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

from x15g.specweb.fileset import file_bytes, file_size, tag_offsets, TAGS_PER_CLASS
from x15g.specweb.postlog import HEADER_LEN, RECORD_LEN, header
from x15g.specweb.tables import ad_field
from x15g.specweb.wrap import wrap_parts

_SERVER_LABEL = b"SERVER_SOFTWARE = "
_HEAD = wrap_parts(b"", b"", b"", b"")[0].split(_SERVER_LABEL)[0] + _SERVER_LABEL
_IP_LABEL = b"\n<p>REMOTE_ADDR = "
_QS_LABEL = b"\n<p>QUERY_STRING = "
_FOUND = re.compile(rb"^found_cookie=Ad_id=(-?\d+)&Ad_weight=(\d+)&Expired=(\d+)$")


class FileCache:
    """Rebuilt file-set files, least recently used first out once `max_bytes` is exceeded."""

    def __init__(self, seed: int = 1999, max_bytes: int = 256 << 20) -> None:
        self.seed = seed
        self.max_bytes = max_bytes
        self.bytes = 0
        self._files: OrderedDict[tuple[int, ...], bytes] = OrderedDict()

    def get(self, d: int, cls: int, num: int, ad: int = -1) -> bytes:
        """File (d, cls, num); with ad >= 0, the CAD-substituted version for ad `ad` (§5.5 step 4)."""
        key = (d, cls, num, ad)
        data = self._files.get(key)
        if data is not None:
            self._files.move_to_end(key)
            return data
        data = file_bytes(d, cls, num, self.seed) if ad < 0 else substitute(self.get(d, cls, num), ad)
        self._files[key] = data
        self.bytes += len(data)
        while self.bytes > self.max_bytes and len(self._files) > 1:
            self.bytes -= len(self._files.popitem(last=False)[1])
        return data


def substitute(data: bytes, ad: int) -> bytes:
    """The file with the 17-byte field of every ad tag set to ad `ad` (the expected CAD body)."""
    offsets = tag_offsets(data)
    if not offsets:
        return data
    out = bytearray(data)
    field = ad_field(ad)
    for off in offsets:
        out[off:off + len(field)] = field
    return bytes(out)


def _wrapped_region(body: bytes, qs: bytes, script: bytes) -> tuple[str | None, int, int]:
    """Locate X in WRAP(qs, X) (§5.2); (failed check or None, start, end) of X in body."""
    if not body.startswith(_HEAD):
        return "wrapper", 0, 0
    ip_at = body.find(_IP_LABEL, len(_HEAD))
    if ip_at < 0:
        return "wrapper", 0, 0
    server = body[len(_HEAD):ip_at]
    ip_end = body.find(b"\n", ip_at + len(_IP_LABEL))
    ip = body[ip_at + len(_IP_LABEL):ip_end]
    prefix, tail = wrap_parts(qs, server, ip, script)
    if not body.startswith(prefix):
        qs_at = body.find(_QS_LABEL)
        if qs_at >= 0 and not body.startswith(_QS_LABEL + qs + b"\n", qs_at):
            return "query_string", 0, 0
        return "wrapper", 0, 0
    if not body.endswith(tail) or len(body) < len(prefix) + len(tail):
        return "wrapper", 0, 0
    return None, len(prefix), len(body) - len(tail)


def check_static(status: int, body: bytes, expected: bytes) -> str | None:
    """§7.2: 200 and the body equals the rebuilt file byte for byte."""
    if status != 200:
        return "static status"
    if body != expected:
        return "static body mismatch"
    return None


def check_wrapped(op: str, status: int, body: bytes, qs: bytes, script: bytes, expected: bytes) -> str | None:
    """§7.3 body rules: 200, body == WRAP(qs, X) and X == expected, byte for byte."""
    if status != 200:
        return f"{op} status"
    failed, start, end = _wrapped_region(body, qs, script)
    if failed:
        return f"{op} {failed}"
    if memoryview(body)[start:end] != expected:
        return f"{op} body mismatch"
    return None


def check_dynamic(op: str, status: int, set_cookies: list[str], body: bytes, qs: bytes, script: bytes,
                  expected: bytes) -> str | None:
    """§7.3 (standard dynamic and CGI GET): the wrapped file and no `found_cookie`."""
    failed = check_wrapped(op, status, body, qs, script, expected)
    if failed:
        return failed
    if any(c.startswith("found_cookie") for c in set_cookies):
        return f"{op} found_cookie"
    return None


def parse_found_cookie(set_cookies: list[str]) -> tuple[int, int, int] | None:
    """(A, W, X) from `Set-Cookie: found_cookie=Ad_id=A&Ad_weight=W&Expired=X`, or None (§5.5)."""
    found = [c for c in set_cookies if c.startswith("found_cookie=")]
    if len(found) != 1:
        return None
    m = _FOUND.match(found[0].strip().encode("latin-1"))
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


@dataclass(frozen=True, slots=True)
class AdExpectation:
    """The client's own ad selection (§7.4): X may be either value near the expiry time."""

    ad: int
    weight: int
    expired: int
    either_expired: bool = False

    def matches(self, got: tuple[int, int, int]) -> bool:
        """True when the server's (A, W, X) equals this selection."""
        a, w, x = got
        return a == self.ad and w == self.weight and (x == self.expired or (self.either_expired and x in (0, 1)))


def check_cad(status: int, set_cookies: list[str], body: bytes, qs: bytes, script: bytes, files: FileCache,
              target: tuple[int, int, int], want: AdExpectation) -> str | None:
    """§7.4: Set-Cookie parses, (A, W, X) is the client's selection, tags carry A, other bytes unchanged."""
    if status != 200:
        return "CAD GET status"
    got = parse_found_cookie(set_cookies)
    if got is None:
        return "CAD GET set-cookie"
    if not want.matches(got):
        return "CAD GET ad selection"
    failed, start, end = _wrapped_region(body, qs, script)
    if failed:
        return f"CAD GET {failed}"
    d, cls, num = target
    if memoryview(body)[start:end] == files.get(d, cls, num, want.ad):
        return None
    x = body[start:end]
    if len(x) != file_size(cls, num) or [x[o:o + 17] for o in tag_offsets(x)] != [ad_field(want.ad)] * TAGS_PER_CLASS[cls]:
        return "CAD GET tags"
    return "CAD GET body mismatch"


def check_post(status: int, set_cookies: list[str], body: bytes, script: bytes, uid: int,
               expected: bytes) -> str | None:
    """§7.5: `Set-Cookie: my_cookie=<U>` and WRAP("", file)."""
    failed = check_wrapped("POST", status, body, b"", script, expected)
    if failed:
        return failed
    if [c.strip() for c in set_cookies if c.startswith("my_cookie=")] != ["my_cookie=%d" % uid]:
        return "POST set-cookie"
    return None


# --- the post-log check after the run (§7.5) ---

PostRecord = tuple[int, int, int, int, int]  # (dir, class, num, client, U)


def parse_post_log(log: bytes) -> tuple[int, list[tuple[int, PostRecord, bytes]]]:
    """(header count, [(n, (dir, class, num, client, U), filename field)]); ValueError if malformed."""
    if len(log) < HEADER_LEN or log[HEADER_LEN - 1:HEADER_LEN] != b"\n":
        raise ValueError("post.log header malformed")
    count = int(log[:HEADER_LEN])
    rest = log[HEADER_LEN:]
    if len(rest) % RECORD_LEN:
        raise ValueError("post.log size is not 11 + 139*k")
    out = []
    for i in range(0, len(rest), RECORD_LEN):
        r = rest[i:i + RECORD_LEN]
        if r[-1:] != b"\n":
            raise ValueError("post.log record %d does not end in a newline" % (i // RECORD_LEN + 1))
        try:
            rec = (int(r[33:38]), int(r[39:41]), int(r[42:44]), int(r[45:55]), int(r[128:138]))
            out.append((int(r[0:10]), rec, r[56:116]))
        except ValueError:
            raise ValueError("post.log record %d malformed" % (i // RECORD_LEN + 1)) from None
    return count, out


def check_post_log(log: bytes, confirmed: list[PostRecord], pending: list[PostRecord],
                   urlroot: str = "/file_set/") -> list[str]:
    """Problems found in the fetched post.log (empty list = passed).

    `confirmed` are the POSTs answered 200; `pending` were in flight when the users stopped, so
    each may or may not have been logged.
    """
    try:
        count, records = parse_post_log(log)
    except ValueError as e:
        return [str(e)]
    problems = []
    if count != len(records) or len(log) != header(0).__len__() + RECORD_LEN * count:
        problems.append("post.log header count %d but %d records" % (count, len(records)))
    if [n for n, _, _ in records] != list(range(1, len(records) + 1)):
        problems.append("post.log record numbers are not 1..count without gaps")
    for _, (d, cls, num, _, _), name in records:
        want = (urlroot + "dir%05d/class%d_%d" % (d, cls, num)).encode().ljust(60)[:60]
        if name != want:
            problems.append("post.log filename field %r" % name.rstrip())
            break
    logged = Counter(rec for _, rec, _ in records)
    mine = Counter(confirmed)
    missing = mine - logged
    extra = logged - mine - Counter(pending)
    if missing:
        problems.append("post.log lacks %d acknowledged POSTs" % sum(missing.values()))
    if extra:
        problems.append("post.log has %d records the client never sent" % sum(extra.values()))
    return problems
