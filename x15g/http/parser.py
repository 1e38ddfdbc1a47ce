"""Strict HTTP/1.1 request-head parser (RFC 9112 / RFC 9110), pure: bytes in, `Request` out.

`parse_head(buf, limits)` returns `(Request, consumed)` once the whole head (request line, field
lines, final CRLFCRLF) is in `buf`, or None while it is incomplete. Every refusal raises
`ProtocolError(status, reason)`; the connection answers it and closes.

Speed matters (this runs once per request): one `find(b"\\r\\n\\r\\n")`, one `split`, C-level
`count`/`translate` checks over the whole head instead of per-character loops, a cache of
already validated field names (common names are validated and lower-cased once per process),
and a cache of parsed field blocks: a client's field lines repeat while its request line
changes, so a known block costs only the request line's checks. `known_head(buf, limits)` gives
the parts of such a head without building a Request (the ready answers' lookup by what selects
an answer: server/answers.py); `request_of` makes its Request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from x15g.cache.admission import SecondSighting
from x15g.errors import HTTPError, ProtocolError
from x15g.http.messages import SELECTING_FIELDS, Request

CRLF = b"\r\n"

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
#                          / "`" / "|" / "~" / DIGIT / ALPHA
TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# CTLs that may appear nowhere in a head. CR and LF are checked by counting (they are only
# allowed as CRLF pairs); HTAB is allowed in field values (OWS) and checked in the request line.
BAD_HEAD_BYTES = bytes(c for c in range(32) if c not in (9, 10, 13)) + b"\x7f"
# Deleting every byte that may appear in a head leaves only CR, LF and forbidden CTLs: for a good
# head of n lines that is exactly CRLF * (n - 1), so one C-level pass checks all line endings.
_ORDINARY_BYTES = bytes(c for c in range(256) if c not in BAD_HEAD_BYTES and c not in (10, 13))
_CRLF_RUNS = [b"\r\n" * n for n in range(128)]  # the expected result for a head of n+1 lines
# A request-target may hold any printable ASCII (RFC 3986 plus the '"', '<', '>', '\\', '^', '`',
# '{', '|', '}' that old clients send unencoded and llhttp also accepts; the static path mapper
# percent-decodes and checks the result anyway). CTLs, SP, HTAB, DEL and non-ASCII are refused.
# Host = uri-host [ ":" port ]; uri-host = IP-literal / IPv4address / reg-name (RFC 3986 §3.2.2):
# unreserved / pct-encoded / sub-delims, plus ':' and brackets for ports and IP literals.
HOST_BYTES = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
              b"-._~%!$&'()*+,;=:[]")

# Methods RFC 9110 §9 (and PATCH, RFC 5789) defines. The parser accepts any token; the app answers
# 501 for methods outside this set and 405 for known ones a resource does not allow.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                           "PATCH"})
_METHOD_STR = {m.encode(): m for m in KNOWN_METHODS}

# Fields that must appear at most once: a second line makes the request ambiguous (RFC 9110 §5.3
# forbids senders to repeat non-list fields; RFC 9112 §3.2 requires 400 for two Host lines).
SINGLETON_FIELDS = frozenset({b"host", b"content-length", b"content-type", b"authorization",
                              b"proxy-authorization", b"if-modified-since",
                              b"if-unmodified-since", b"if-range", b"range", b"user-agent",
                              b"referer", b"max-forwards"})
MAX_LEADING_EMPTY_LINES = 4  # RFC 9112 §2.2: SHOULD ignore at least one CRLF before the line
_NAME_CACHE_SIZE = 512
_name_cache: dict[bytes, bytes] = {}  # raw field name -> validated lower-case name
_valid_hosts: set[bytes] = set()  # Host values already checked

# Parses kept by the exact bytes they came from (the X15 idea applied to requests: identical
# bytes always parse the same way), in two caches:
# - field blocks: a client sends the same field lines request after request (user agent,
#   Accept-*, cookies, the Referer of the page whose resources it fetches) while its request
#   line changes, so a head whose block was parsed before costs only its request line's checks.
#   Kept per HTTP version (keep-alive and Expect depend on it), from a block's first sighting:
#   a browser's second request for a page's resources is the first that can use it (kept from
#   the second, a visitor's first two requests both paid the full rules: the `browser` bench
#   went from 13.0 to 11.7 us per request), and a flood of blocks that never repeat only clears
#   the cache once per _CACHE_SIZE of them, after which each block in use is parsed once more;
# - whole heads: a client that repeats its head byte for byte (a poller, a load generator) costs
#   one lookup. A head is kept from its second sighting (cache/admission.py) once its block is
#   known: whole heads that never repeat are not copied here.
# Only heads that parsed without error and have a plain origin-form target (an absolute-form
# target replaces Host) are kept. Bounded; cleared when full or when a caller uses other Limits.
_CACHE_SIZE = 1024  # entries, in each (at most ~12 MB: heads of _CACHE_MAX_LEN, with the admission's)
_CACHE_MAX_LEN = 2048  # longer heads are not kept
_parsed_heads: dict[bytes, tuple] = {}  # head -> its Request's fields
_parsed_fields: dict[bytes, dict[int, tuple]] = {}  # block -> {version: its parse}
_parsed_for: list[object] = [None]  # the Limits both were filled under
_head_admission = SecondSighting(_CACHE_SIZE)
_VERSIONS = {b"HTTP/1.1": 11, b"HTTP/1.0": 10}
assert SELECTING_FIELDS[0] == b"accept-encoding"  # _selecting_of's usual case builds on this order
_CONDITIONAL = frozenset(SELECTING_FIELDS[1:])
# Maps each byte a plain origin-form target may hold (visible ASCII but '#') to itself and every
# other to another byte, so `target.translate(_PLAIN_TARGET) is target` tells a plain target in
# one C pass: bytes.translate returns its very input when nothing changed.
_PLAIN_TARGET = bytes(c if 0x21 <= c < 0x7F and c != 0x23 else (c + 1) % 256 for c in range(256))


@dataclass(frozen=True, slots=True)
class Limits:
    """Protocol limits (bytes/counts) the parser and body decoders enforce."""

    max_request_line: int = 8190
    max_header_size: int = 64 * 1024
    max_header_count: int = 100
    max_field_size: int = 8190
    max_body_size: int = 10 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """Build Limits from a Settings object (attributes of the same names)."""
        return cls(settings.max_request_line, settings.max_header_size,
                   settings.max_header_count, settings.max_field_size, settings.max_body_size)


def _skip_empty_lines(buf: bytes | bytearray) -> int:
    """Offset after the empty lines (CRLF) a client may send before the request line."""
    start = 0
    while buf.startswith(CRLF, start):
        start += 2
        if start > 2 * MAX_LEADING_EMPTY_LINES:
            raise ProtocolError(400, "too many empty lines before the request")
    return start


def _check_incomplete(buf: bytes | bytearray, start: int, limits: Limits) -> None:
    """Refuse an incomplete head early when it already breaks a limit or the line rules."""
    line_end = buf.find(CRLF, start)
    if (line_end if line_end >= 0 else len(buf)) - start > limits.max_request_line:
        raise ProtocolError(414, "request line too long")
    if len(buf) - start > limits.max_header_size:
        raise ProtocolError(431, "request head too large")
    # A bare LF or CR or a CTL never becomes valid by waiting (a final CR may still get its LF).
    special = bytes(buf[start:]).translate(None, _ORDINARY_BYTES)
    if buf.endswith(b"\r"):
        special = special[:-1]
    if special.replace(CRLF, b""):
        raise ProtocolError(400, "bare CR/LF or control character in the request head")


def parse_head(buf: bytes | bytearray, limits: Limits) -> tuple[Request, int] | None:
    """Parse one request head at the start of `buf`.

    Returns `(request, consumed)` where `consumed` counts the bytes of the head including any
    leading empty lines and the final CRLFCRLF, or None when more bytes are needed. Raises
    ProtocolError (400/414/431/501/505) for anything RFC 9112 does not allow.
    """
    start = _skip_empty_lines(buf) if buf.startswith(CRLF) else 0
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        _check_incomplete(buf, start, limits)
        return None
    if end + 4 - start > limits.max_header_size:
        raise ProtocolError(431, "request head too large")
    head = buf[start:end]
    if type(head) is not bytes:
        head = bytes(head)
    same_limits = _parsed_for[0] is limits
    if same_limits:
        cached = _parsed_heads.get(head)
        if cached is not None:
            method, target, path, query, version, headers, keep_alive, length, chunked, expect, selecting = cached
            return Request(method, target, path, query, version, dict(headers), keep_alive, length, chunked,
                           expect, selecting=selecting), end + 4
    cut = head.find(CRLF)
    block = head[cut + 2:] if 0 < cut and len(head) <= _CACHE_MAX_LEN else None
    if block is not None and same_limits:
        known = _parsed_fields.get(block)
        if known is not None:
            parts = _known_line(head[:cut], known, limits)
            if parts is not None:
                request = request_of(parts)
                if _head_admission.admit(head):
                    _remember_head(head, request)
                return request, end + 4
    request = _parse_new_head(head, limits)
    request.selecting = _selecting_of(request)
    if block is not None and _plain_target(request.method, request.target):
        _remember_fields(block, request, limits)
    return request, end + 4


KnownHead = tuple  # (method, target, path, query, version, the block's parse): see known_head


def known_head(buf: bytes, limits: Limits) -> KnownHead | None:
    """The parts of the request `buf` holds when it is exactly one head whose field block was
    parsed before under these `limits`, without building a Request: (method, target, path,
    query, version, the block's parse), whose last element ends with the request's `selecting`
    values. None for anything else: parse_head gives its verdict (the same, for a known block)."""
    end = len(buf) - 4
    if (_parsed_for[0] is not limits or end > _CACHE_MAX_LEN or end + 4 > limits.max_header_size
            or not buf.endswith(b"\r\n\r\n")):
        return None  # other limits, never kept, too large, or incomplete
    cut = buf.find(CRLF)
    if cut <= 0 or cut >= end:
        return None  # empty lines first, or no field block
    # A known block holds no empty line, so this is one head: a second one after it (pipelined)
    # would make the block unknown.
    known = _parsed_fields.get(buf[cut + 2:end])
    return _known_line(buf[:cut], known, limits) if known is not None else None


def request_of(head: KnownHead) -> Request:
    """The Request of a `known_head`."""
    method, target, path, query, version, (headers, keep_alive, length, chunked, expect, selecting) = head
    return Request(method, target, path, query, version, dict(headers), keep_alive, length, chunked, expect,
                   selecting=selecting)


def _selecting_of(request: Request) -> tuple | None:
    """What in `request` a `fresh` response may depend on beside its method, path and version
    (keep-alive and the SELECTING_FIELDS' values: `Request.selecting`); None with a body, which
    no stored answer ever answers."""
    if request.content_length or request.chunked:
        return None
    headers = request.headers
    if _CONDITIONAL.isdisjoint(headers):  # the usual request: at most a content coding
        return (request.keep_alive, headers.get(b"accept-encoding"), None, None, None, None, None, None)
    return (request.keep_alive, *map(headers.get, SELECTING_FIELDS))


def _known_line(line: bytes, known: dict[int, tuple], limits: Limits) -> KnownHead | None:
    """The parts of the request `line` followed by a field block parsed before under these
    limits (`known`: its parse per HTTP version), for the usual line only: a known method and
    version, a plain origin-form target of visible ASCII. The full rules (`_parse_new_head`)
    accept exactly these lines too; None sends anything else to them, which then raise what they
    always do. Lines come here once per request, so the checks are a few C calls."""
    if len(line) > limits.max_request_line:
        return None
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    raw_method, target, raw_version = parts
    method = _METHOD_STR.get(raw_method)
    parsed = known.get(_VERSIONS.get(raw_version))  # type: ignore[arg-type]
    if (method is None or parsed is None or target[:1] != b"/" or method == "CONNECT"
            or target.translate(_PLAIN_TARGET) is not target):
        return None
    path, _, query = target.partition(b"?")
    return method, target, path, query, _VERSIONS[raw_version], parsed


def _plain_target(method: str, target: bytes) -> bool:
    """A plain origin-form target: "/path?query" without a fragment (RFC 9112 §3.2.1)."""
    return target[0] == 0x2F and method != "CONNECT" and b"#" not in target


def _remember_fields(block: bytes, request: Request, limits: Limits) -> None:
    """Keep the parse of a field block (for the request's version)."""
    if _parsed_for[0] is not limits or len(_parsed_fields) >= _CACHE_SIZE:
        _parsed_fields.clear()
        if _parsed_for[0] is not limits:
            _parsed_heads.clear()
            _parsed_for[0] = limits
    known = _parsed_fields.get(block)
    if known is None:
        known = _parsed_fields[block] = {}
    known[request.version] = (dict(request.headers), request.keep_alive, request.content_length,
                              request.chunked, request.expect_continue, request.selecting)


def _remember_head(head: bytes, request: Request) -> None:
    """Keep the parse of a whole head seen for the second time (its block is known)."""
    if len(_parsed_heads) >= _CACHE_SIZE:
        _parsed_heads.clear()
    _parsed_heads[head] = (request.method, request.target, request.path, request.query, request.version,
                           dict(request.headers), request.keep_alive, request.content_length,
                           request.chunked, request.expect_continue, request.selecting)


def _parse_new_head(head: bytes, limits: Limits) -> Request:
    """The full RFC 9112 rules for a head whose field block is not known (without its final
    CRLFCRLF)."""
    lines = head.split(CRLF)
    # Only CRLF pairs may end lines (RFC 9112 §2.2: a bare CR must be refused; we also refuse a
    # bare LF, like llhttp's strict mode, so no two parsers disagree on where a line ends), and no
    # CTL but HTAB may appear anywhere (RFC 9110 §5.5).
    n_fields = len(lines) - 1
    if n_fields > limits.max_header_count:
        raise ProtocolError(431, "too many header fields")
    expected = _CRLF_RUNS[n_fields] if n_fields < 128 else CRLF * n_fields
    if head.translate(None, _ORDINARY_BYTES) != expected:
        raise ProtocolError(400, "bare CR/LF or control character in the request head")
    line = lines[0]
    if len(head) > limits.max_field_size or len(line) > limits.max_request_line:
        _check_line_lengths(lines, limits)
    method, target, version = _parse_request_line(line)
    headers = _parse_fields(lines) if n_fields else {}
    return _build_request(method, target, version, headers, limits)


def _check_line_lengths(lines: list[bytes], limits: Limits) -> None:
    """Refuse a request line longer than allowed (414) or a field line (431)."""
    if len(lines[0]) > limits.max_request_line:
        raise ProtocolError(414, "request line too long")
    if max(map(len, lines[1:]), default=0) > limits.max_field_size:
        raise ProtocolError(431, "header field too large")


def _parse_request_line(line: bytes) -> tuple[str, bytes, int]:
    """Split `method SP request-target SP HTTP-version` (RFC 9112 §3), exactly single spaces."""
    parts = line.split(b" ")
    if len(parts) != 3:
        raise ProtocolError(400, "malformed request line")
    raw_method, target, raw_version = parts
    version = _VERSIONS.get(raw_version)
    if version is None:
        version = _other_version(raw_version)
    method = _METHOD_STR.get(raw_method)
    if method is None:
        if not raw_method or raw_method.translate(None, TCHAR):
            raise ProtocolError(400, "invalid method")
        method = raw_method.decode("ascii")
    # CTLs and DEL were refused with the whole head; SP cannot be left after the split.
    if not target or not target.isascii() or b"\t" in target:
        raise ProtocolError(400, "invalid request target")
    return method, target, version


def _other_version(raw: bytes) -> int:
    """HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3): well-formed but not 1.x -> 505."""
    if (len(raw) == 8 and raw.startswith(b"HTTP/") and raw[5:6].isdigit() and raw[6:7] == b"."
            and raw[7:8].isdigit()):
        raise ProtocolError(505, "HTTP version not supported")
    raise ProtocolError(400, "malformed HTTP version")


def _field_name(name: bytes) -> bytes:
    """Validate a field name (a token, RFC 9110 §5.1) and return it lower-cased; cached."""
    if not name or name.translate(None, TCHAR):
        # Also catches obs-fold (a line starting with SP/HTAB, RFC 9112 §5.2) and whitespace
        # before the colon (RFC 9112 §5.1: MUST be rejected with 400).
        raise ProtocolError(400, "invalid header field name")
    lower = name.lower()
    if len(_name_cache) < _NAME_CACHE_SIZE:
        _name_cache[name] = lower
    return lower


def _parse_fields(lines: list[bytes]) -> dict[bytes, bytes]:
    """Field lines (after the request line, `lines[0]`) -> dict of lower-case names; repeated
    fields joined (RFC 9110 §5.3). The fast path handles the usual head (every name already
    validated and cached, no repeats); anything else (a line without ':', a new name, a repeated
    field) goes to the full rules."""
    fields = lines[1:]
    headers: dict[bytes, bytes] = {}
    cache = _name_cache
    try:
        for line in fields:
            name, colon, value = line.partition(b":")
            if not colon:
                raise KeyError(name)
            # OWS around the value (RFC 9112 §5.1). A bare strip() also removes VT/FF/CR/LF, but
            # those were already refused with the whole head, so it strips exactly SP and HTAB.
            headers[cache[name]] = value.strip()
    except KeyError:
        return _parse_fields_slowly(fields)
    if len(headers) != len(fields):  # a repeated field: join or refuse
        return _parse_fields_slowly(fields)
    return headers


def _parse_fields_slowly(fields: list[bytes]) -> dict[bytes, bytes]:
    """The complete field-line rules, one line at a time (RFC 9112 §5)."""
    headers: dict[bytes, bytes] = {}
    for line in fields:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError(400, "header line without ':'")
        lname = _name_cache.get(name)
        if lname is None:
            lname = _field_name(name)
        value = value.strip(b" \t")  # OWS around the value (RFC 9112 §5.1)
        if lname in headers:
            headers[lname] = _join(lname, headers[lname], value)
        else:
            headers[lname] = value
    return headers


def _join(lname: bytes, old: bytes, value: bytes) -> bytes:
    """Combine a repeated field: list fields with ", ", Cookie with "; " (RFC 9110 §5.3, 6265)."""
    if lname in SINGLETON_FIELDS:
        raise ProtocolError(400, f"repeated {lname.decode()} header")
    if lname == b"cookie":
        return old + b"; " + value
    return old + b", " + value


def _tokens(value: bytes) -> list[bytes]:
    """A comma-separated token list, lower-cased, empty elements dropped (RFC 9110 §5.6.1)."""
    return [t for t in (p.strip(b" \t").lower() for p in value.split(b",")) if t]


def _build_request(method: str, target: bytes, version: int, headers: dict[bytes, bytes],
                   limits: Limits) -> Request:
    """Apply the target, Host, framing, Connection and Expect rules to a parsed head."""
    if target[0] == 0x2F and method != "CONNECT" and b"#" not in target:  # plain origin-form
        path, _, query = target.partition(b"?")
    else:
        path, query = _split_target(method, target, headers)
    get = headers.get
    host = get(b"host")
    if host is None:
        if version == 11:  # RFC 9112 §3.2: MUST answer 400
            raise ProtocolError(400, "missing Host header")
    elif host not in _valid_hosts:
        _check_host(host)
    content_length = None
    chunked = False
    te = get(b"transfer-encoding")
    cl = get(b"content-length")
    if te is not None:
        chunked = _check_transfer_encoding(te, version, cl)
    elif cl is not None:
        # RFC 9110 §8.6: Content-Length = 1*DIGIT; lists (even "5, 5") are refused.
        if not cl.isdigit():  # bytes.isdigit() is ASCII-only
            raise ProtocolError(400, "invalid Content-Length")
        content_length = int(cl)
        if content_length > limits.max_body_size:
            raise HTTPError(413, "request body too large", close=True)
    conn = get(b"connection")
    if conn is None or conn == b"keep-alive":
        keep_alive = version == 11 or conn is not None
    else:
        conn = conn.lower()
        tokens = (conn,) if b"," not in conn else _tokens(conn)
        keep_alive = b"close" not in tokens if version == 11 else b"keep-alive" in tokens
    expect_continue = False
    expect = get(b"expect")
    if expect is not None:
        if expect.lower() != b"100-continue":  # RFC 9110 §10.1.1: MAY answer 417
            raise ProtocolError(417, "unsupported expectation")
        expect_continue = version == 11  # RFC 9110 §10.1.1: ignored in HTTP/1.0
    return Request(method, target, path, query, version, headers, keep_alive, content_length,
                   chunked, expect_continue)


def _check_host(host: bytes) -> None:
    """Host = uri-host [ ":" port ] (RFC 9112 §3.2: an invalid value MUST get 400); cached."""
    if host.translate(None, HOST_BYTES):
        raise ProtocolError(400, "invalid Host header")
    if len(_valid_hosts) < _NAME_CACHE_SIZE:
        _valid_hosts.add(host)


def _check_transfer_encoding(te: bytes, version: int, cl: bytes | None) -> bool:
    """Allow only a final `chunked` (RFC 9112 §6.1, §6.3); returns True (chunked)."""
    if version == 10:  # RFC 9112 §6.1: a 1.0 recipient cannot rely on TE framing
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if cl is not None:  # RFC 9112 §6.3: request smuggling vector; refuse and close
        raise ProtocolError(400, "both Transfer-Encoding and Content-Length")
    codings = _tokens(te)
    if not codings or codings[-1] != b"chunked":
        raise ProtocolError(400, "Transfer-Encoding without a final chunked")
    if codings.count(b"chunked") > 1:  # RFC 9112 §7: MUST NOT apply chunked more than once
        raise ProtocolError(400, "chunked applied more than once")
    for coding in codings[:-1]:
        if coding.translate(None, TCHAR):
            raise ProtocolError(400, "invalid transfer coding")
    if len(codings) > 1:  # RFC 9112 §6.1: SHOULD answer 501 for a coding we do not implement
        raise ProtocolError(501, "unsupported transfer coding")
    return True


def _split_target(method: str, target: bytes, headers: dict[bytes, bytes]) -> tuple[bytes, bytes]:
    """The four request-target forms of RFC 9112 §3.2 -> (path, query) as raw bytes."""
    first = target[0]
    if first == 0x2F and method != "CONNECT":  # "/": origin-form, the common case
        return _path_query(target)
    if target == b"*":
        if method != "OPTIONS":  # RFC 9112 §3.2.4: asterisk-form only for OPTIONS
            raise ProtocolError(400, "'*' target outside OPTIONS")
        return b"*", b""
    if method == "CONNECT":  # RFC 9112 §3.2.3: authority-form, and only for CONNECT
        _check_authority(target, require_port=True)
        return b"", b""
    lower = target[:8].lower()
    if lower.startswith(b"http://"):
        rest = target[7:]
    elif lower.startswith(b"https://"):
        rest = target[8:]
    else:
        raise ProtocolError(400, "invalid request target")
    # absolute-form (RFC 9112 §3.2.2): the origin server uses the target's authority and ignores
    # the Host field's value, so we replace it (Host must still be present in HTTP/1.1).
    cut = len(rest)
    for sep in (b"/", b"?", b"#"):
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    authority = rest[:cut]
    _check_authority(authority, require_port=False)
    if b"host" in headers:
        headers[b"host"] = authority
    path, query = _path_query(rest[cut:])
    return (path or b"/"), query


def _check_authority(authority: bytes, require_port: bool) -> None:
    """uri-host [":" port] without userinfo (RFC 9110 §4.2.4: userinfo is an error)."""
    if not authority or b"@" in authority or authority.translate(None, HOST_BYTES):
        raise ProtocolError(400, "invalid authority in request target")
    host, colon, port = authority.rpartition(b":")
    if b"]" in port:  # "[::1]" without a port: the last ':' is inside the IP literal
        host, colon, port = authority, b"", b""
    if require_port and (not colon or not port.isdigit() or not host):
        raise ProtocolError(400, "authority-form needs host:port")
    if colon and port and not port.isdigit():
        raise ProtocolError(400, "invalid port in request target")


def _path_query(target: bytes) -> tuple[bytes, bytes]:
    """Split "path?query", dropping a fragment some clients send (it is not part of a target)."""
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    path, _, query = target.partition(b"?")
    return path, query
