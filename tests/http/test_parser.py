"""Unit tests of the strict request-head parser, on byte literals."""

from __future__ import annotations

from typing import Callable

import pytest

from x15g.config import default_settings
from x15g.errors import HTTPError, ProtocolError
from x15g.http.messages import Request
from x15g.http.parser import Limits, parse_head

LIMITS = Limits()
H = b"Host: example.com\r\n"


def parse(raw: bytes, limits: Limits = LIMITS):
    result = parse_head(raw, limits)
    assert result is not None, "head incomplete"
    return result


def status_of(raw: bytes, limits: Limits = LIMITS) -> int:
    with pytest.raises(HTTPError) as info:
        parse_head(raw, limits)
    assert info.value.close
    return info.value.status


def test_simple_get() -> None:
    raw = b"GET /a/b?x=1&y HTTP/1.1\r\n" + H + b"Accept: */*\r\n\r\n"
    request, consumed = parse(raw)
    assert consumed == len(raw)
    assert (request.method, request.target, request.path, request.query) == (
        "GET", b"/a/b?x=1&y", b"/a/b", b"x=1&y")
    assert request.version == 11 and request.keep_alive
    assert request.headers == {b"host": b"example.com", b"accept": b"*/*"}
    assert request.content_length is None and not request.chunked and not request.expect_continue


def test_limits_from_settings() -> None:
    settings = default_settings(root=".")
    limits = Limits.from_settings(settings)
    assert limits.max_header_count == settings.max_header_count
    assert limits.max_body_size == settings.max_body_size


@pytest.mark.parametrize("raw", [
    b"",
    b"GET / HTTP/1.1",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r",
    b"\r\n",
    b"\r\nGET / HTT",
])
def test_incomplete_head_returns_none(raw: bytes) -> None:
    assert parse_head(raw, LIMITS) is None


def test_bytearray_input() -> None:
    raw = bytearray(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    request, consumed = parse(raw)
    assert request.path == b"/" and consumed == len(raw)


def test_pipelined_requests_from_leftover() -> None:
    first = b"GET /one HTTP/1.1\r\n" + H + b"\r\n"
    second = b"POST /two HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
    buf = first + second + b"GET /thr"
    request, consumed = parse(buf)
    assert request.path == b"/one" and consumed == len(first)
    request, consumed2 = parse(buf[consumed:])
    assert request.path == b"/two" and request.content_length == 3
    assert buf[consumed + consumed2:consumed + consumed2 + 3] == b"abc"
    assert parse_head(buf[consumed + consumed2 + 3:], LIMITS) is None


@pytest.mark.parametrize("prefix", [b"\r\n", b"\r\n\r\n"])
def test_leading_empty_lines_ignored(prefix: bytes) -> None:
    raw = prefix + b"GET / HTTP/1.1\r\n" + H + b"\r\n"
    request, consumed = parse(raw)
    assert consumed == len(raw) and request.method == "GET"


def test_many_leading_empty_lines_refused() -> None:
    assert status_of(b"\r\n" * 10 + b"GET / HTTP/1.1\r\n" + H + b"\r\n") == 400


@pytest.mark.parametrize("raw, status", [
    # request line shape (RFC 9112 §3)
    (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
    (b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /\r\n" + H + b"\r\n", 400),
    (b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1\r\n" + H + b"\r\n", 400),
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    (b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    (b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
    # request-target forms (RFC 9112 §3.2)
    (b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET example.com:80 HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"CONNECT example.com HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET ftp://example.com/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET http://user@example.com/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    (b"GET /a\tb HTTP/1.1\r\n" + H + b"\r\n", 400),
    # line endings and control characters (RFC 9112 §2.2, RFC 9110 §5.5)
    (b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X: a\x1bb\r\n\r\n", 400),
    # field lines (RFC 9112 §5)
    (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tfolded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X : a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X\t: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b": a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X(y): a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X\xffy: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"no colon here\r\n\r\n", 400),
    # Host (RFC 9112 §3.2)
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: \xffa\r\n\r\n", 400),
    # Content-Length (RFC 9110 §8.6)
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1_0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x10\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \xd9\xa3\r\n\r\n", 400),
    # Transfer-Encoding (RFC 9112 §6.1, §6.3)
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \xa0chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunkedchunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity, chunked\r\n\r\n", 501),
    # other singleton fields and expectations
    (b"GET / HTTP/1.1\r\n" + H + b"Content-Type: a\r\nContent-Type: b\r\n\r\n", 400),
    (b"PUT / HTTP/1.1\r\n" + H + b"Expect: 100-continue-please\r\n\r\n", 417),
])
def test_refused(raw: bytes, status: int) -> None:
    assert status_of(raw) == status


def test_unknown_well_formed_method_is_parsed() -> None:
    request, _ = parse(b"BREW /pot HTTP/1.1\r\n" + H + b"\r\n")
    assert request.method == "BREW"


def test_methods_are_case_sensitive() -> None:
    request, _ = parse(b"get / HTTP/1.1\r\n" + H + b"\r\n")
    assert request.method == "get"


@pytest.mark.parametrize("raw, path, query, host", [
    (b"GET http://example.com/a?b HTTP/1.1\r\nHost: other\r\n\r\n", b"/a", b"b", b"example.com"),
    (b"GET HTTP://example.com:8080 HTTP/1.1\r\nHost: x\r\n\r\n", b"/", b"", b"example.com:8080"),
    (b"GET https://[::1]:8443/p HTTP/1.1\r\nHost: x\r\n\r\n", b"/p", b"", b"[::1]:8443"),
    (b"GET http://h?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", b"/", b"q=1", b"h"),
    (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", b"*", b"", b"x"),
    (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", b"", b"",
     b"example.com:443"),
    (b"GET /p#frag HTTP/1.1\r\nHost: x\r\n\r\n", b"/p", b"", b"x"),
    (b"GET /p?a?b=%20#f HTTP/1.1\r\nHost: x\r\n\r\n", b"/p", b"a?b=%20", b"x"),
    (b"GET //x/../y HTTP/1.1\r\nHost: x\r\n\r\n", b"//x/../y", b"", b"x"),
])
def test_target_forms(raw: bytes, path: bytes, query: bytes, host: bytes) -> None:
    request, _ = parse(raw)
    assert (request.path, request.query, request.header(b"host")) == (path, query, host)


def test_http10_without_host_is_fine() -> None:
    request, _ = parse(b"GET / HTTP/1.0\r\n\r\n")
    assert request.version == 10 and not request.keep_alive


@pytest.mark.parametrize("host", [b"", b"example.com", b"a.b:8080", b"[::1]:80", b"0.0.0.0=5000"])
def test_valid_host_values(host: bytes) -> None:
    request, _ = parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert request.header(b"host") == host


@pytest.mark.parametrize("version, connection, keep_alive", [
    (b"1.1", None, True),
    (b"1.1", b"close", False),
    (b"1.1", b"Close", False),
    (b"1.1", b"keep-alive", True),
    (b"1.1", b"Upgrade, CLOSE", False),
    (b"1.1", b"upgrade", True),
    (b"1.1", b"closed", True),
    (b"1.0", None, False),
    (b"1.0", b"keep-alive", True),
    (b"1.0", b"Keep-Alive", True),
    (b"1.0", b"foo,  keep-alive ,bar", True),
    (b"1.0", b"close", False),
])
def test_keep_alive(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    raw = b"GET / HTTP/" + version + b"\r\n" + H
    if connection is not None:
        raw += b"Connection: " + connection + b"\r\n"
    request, _ = parse(raw + b"\r\n")
    assert request.keep_alive is keep_alive


def test_repeated_connection_headers_are_one_list() -> None:
    request, _ = parse(b"GET / HTTP/1.1\r\n" + H + b"Connection: x\r\nConnection: close\r\n\r\n")
    assert not request.keep_alive


@pytest.mark.parametrize("version, value, expected", [
    (b"1.1", b"100-continue", True),
    (b"1.1", b"100-Continue", True),
    (b"1.0", b"100-continue", False),  # RFC 9110 §10.1.1: ignored in HTTP/1.0
])
def test_expect_continue(version: bytes, value: bytes, expected: bool) -> None:
    raw = b"PUT / HTTP/" + version + b"\r\n" + H + b"Content-Length: 1\r\nExpect: " + value
    request, _ = parse(raw + b"\r\n\r\n")
    assert request.expect_continue is expected


def test_repeated_fields_are_joined() -> None:
    raw = (b"GET / HTTP/1.1\r\n" + H + b"Accept: a\r\nCookie: x=1\r\nACCEPT: b\r\n"
           b"cookie: y=2\r\n\r\n")
    request, _ = parse(raw)
    assert request.header(b"accept") == b"a, b"
    assert request.header(b"cookie") == b"x=1; y=2"


def test_values_strip_ows_only() -> None:
    raw = b"GET / HTTP/1.1\r\n" + H + b"A: \t x y \t\r\nB:\r\nC: \xa0v\x85\r\nD:  \r\n\r\n"
    request, _ = parse(raw)
    assert request.headers[b"a"] == b"x y"
    assert request.headers[b"b"] == b""
    assert request.headers[b"c"] == b"\xa0v\x85"  # obs-text is kept, never stripped
    assert request.headers[b"d"] == b""


def test_special_token_characters_in_names() -> None:
    request, _ = parse(b"GET / HTTP/1.1\r\n" + H + b"X.Custom|Pipe_~!#$%&'*+^`: ok\r\n\r\n")
    assert request.headers[b"x.custom|pipe_~!#$%&'*+^`"] == b"ok"


@pytest.mark.parametrize("value, length", [(b"0", 0), (b"010", 10), (b" 42 ", 42), (b"\t7", 7)])
def test_content_length(value: bytes, length: int) -> None:
    request, _ = parse(b"POST / HTTP/1.1\r\n" + H + b"Content-Length:" + value + b"\r\n\r\n")
    assert request.content_length == length
    assert request.has_body is (length > 0)


@pytest.mark.parametrize("value", [b"chunked", b"CHUNKED", b"Chunked", b" chunked ", b", chunked"])
def test_chunked(value: bytes) -> None:
    request, _ = parse(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:" + value + b"\r\n\r\n")
    assert request.chunked and request.content_length is None and request.has_body


def test_body_too_large_is_413_and_close() -> None:
    limits = Limits(max_body_size=100)
    with pytest.raises(HTTPError) as info:
        parse_head(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 101\r\n\r\n", limits)
    assert info.value.status == 413 and info.value.close
    assert not isinstance(info.value, ProtocolError) or info.value.close


def test_huge_content_length_is_413() -> None:
    raw = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1000000000000000000000000\r\n\r\n"
    assert status_of(raw) == 413


# --- limits ---------------------------------------------------------------------------------------

SMALL = Limits(max_request_line=40, max_header_size=200, max_header_count=3, max_field_size=30)


@pytest.mark.parametrize("raw, status", [
    (b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET /" + b"a" * 40, 414),  # incomplete, already too long
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 28 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + b"X: 1234567890123456789012\r\n" * 8, 431),  # incomplete
])
def test_limits(raw: bytes, status: int) -> None:
    assert status_of(raw, SMALL) == status


def test_limits_boundaries_accepted() -> None:
    line = b"GET /" + b"a" * 26 + b" HTTP/1.1"
    assert len(line) == 40
    field = b"X: " + b"y" * 27
    assert len(field) == 30
    request, _ = parse(line + b"\r\nHost: a\r\n" + field + b"\r\nB: 2\r\n\r\n", SMALL)
    assert request.headers[b"x"] == b"y" * 27


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\nHost: a",  # a bare LF never becomes valid
    b"GET / HTTP/1.1\r\nHost: a\rb",
    b"GET /\x00",
])
def test_incomplete_but_already_broken(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(raw, LIMITS)


def test_many_cached_and_uncached_names() -> None:
    names = [b"X-Name-%d" % i for i in range(50)]
    raw = b"GET / HTTP/1.1\r\n" + H + b"".join(n + b": v\r\n" for n in names) + b"\r\n"
    for _ in range(2):  # first pass fills the name cache, second uses it
        request, _ = parse(raw)
        assert len(request.headers) == 51


# --- robustness: arbitrary bytes either parse, wait for more, or raise HTTPError -------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

BASE = b"POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(BASE) - 1), st.binary(min_size=0, max_size=4), st.integers(0, 3))
def test_mutated_heads_never_crash(at: int, insert: bytes, drop: int) -> None:
    raw = BASE[:at] + insert + BASE[at + drop:]
    try:
        result = parse_head(raw, LIMITS)
    except HTTPError:
        return
    if result is not None:
        request, consumed = result
        assert 0 < consumed <= len(raw)
        assert raw[consumed - 4:consumed] == b"\r\n\r\n"
        assert request.version in (10, 11)


def test_a_repeated_field_block_parses_the_same_every_time_and_copies_are_independent() -> None:
    """Field blocks are cached from their first sighting, whole heads from their second once
    their block is known; every parse must equal the full rules' parse, whatever the request line, and
    a caller changing its request's headers must not change the next parse of the same bytes."""
    from x15g.http import parser

    block = b"Host: h\r\nAccept: */*\r\nConnection: close"
    limits = parser.Limits()
    heads = [b"GET /cached?x=%d HTTP/1.1\r\n%s\r\n\r\n" % (i, block) for i in range(5)]
    first, used = parser.parse_head(heads[0], limits)
    assert list(parser._parsed_fields[block]) == [11]
    assert heads[0][:-4] not in parser._parsed_heads  # one sighting: only remembered as seen
    for i, head in enumerate(heads[1:], 1):
        again, again_used = parser.parse_head(head, limits)
        assert again == parser._parse_new_head(head[:-4], limits) and again_used == len(head)
        assert again.keep_alive is False and again.query == b"x=%d" % i
        again.headers[b"accept"] = b"changed"
    assert list(parser._parsed_fields[block]) == [11]
    assert parser.parse_head(heads[0], limits)[0].headers[b"accept"] == b"*/*"
    # A head repeated byte for byte, once its block is known, is kept whole from its second sighting.
    assert heads[0][:-4] not in parser._parsed_heads
    again = parser.parse_head(heads[0], limits)[0]
    assert heads[0][:-4] in parser._parsed_heads
    again.headers[b"accept"] = b"changed"
    assert parser.parse_head(heads[0], limits)[0] == parser._parse_new_head(heads[0][:-4], limits)
    # The same block under HTTP/1.0 is parsed (and kept) for that version on its own.
    assert parser.parse_head(b"GET / HTTP/1.0\r\n%s\r\n\r\n" % block, limits)[0].version == 10


@pytest.mark.parametrize("line", [b"GET  /a HTTP/1.1", b"GET /a HTTP/1.2", b"GET /a HTTP/2.0", b"G@T /a HTTP/1.1",
                                  b"GET /a\tb HTTP/1.1", b"GET /a\x00 HTTP/1.1", b"GET /a\nb HTTP/1.1",
                                  b"GET /a\rb HTTP/1.1", b"GET http://h/a HTTP/1.1", b"CONNECT h:1 HTTP/1.1",
                                  b"GET /a#f HTTP/1.1", b"GET /" + b"a" * 9000 + b" HTTP/1.1"])
def test_a_known_field_block_does_not_make_a_bad_or_unusual_request_line_pass(line: bytes) -> None:
    """After its field block is cached, a request line is judged exactly as the full rules judge it."""
    from x15g.http import parser

    limits = parser.Limits()
    block = b"Host: h\r\nUser-Agent: t"
    for i in range(3):
        parser.parse_head(b"GET /warm%d HTTP/1.1\r\n%s\r\n\r\n" % (i, block), limits)
    assert 11 in parser._parsed_fields[block]
    assert_parsed_as_the_full_rules_say(line + b"\r\n" + block + b"\r\n\r\n", limits)


def assert_parsed_as_the_full_rules_say(head: bytes, limits: Limits) -> None:
    """parse_head's verdict on `head` (from the caches or not) is the full rules' verdict."""
    from x15g.http import parser

    def verdict(parse: Callable[[], object]) -> object:
        try:
            return parse()
        except HTTPError as error:
            return (error.status, str(error))

    def request() -> object:
        result = parse_head(head, limits)
        return result[0] if result is not None else None

    full = verdict(lambda: parser._parse_new_head(head[:-4], limits))
    assert verdict(request) == full
    # The hub's lookup of stored answers reads the same parts without building a Request.
    known = parser.known_head(head, limits)
    if known is not None:
        assert parser.request_of(known) == full
        assert_selecting_follows_from(parser.request_of(known))


def assert_selecting_follows_from(request: Request) -> None:
    """`selecting` is what SELECTING_FIELDS and keep-alive say, or None with a body or untold."""
    from x15g.http.messages import SELECTING_FIELDS

    if request.selecting is not None:
        assert not request.content_length and not request.chunked
        assert request.selecting == (request.keep_alive, *(request.headers.get(name) for name in SELECTING_FIELDS))


# Request lines that are mostly valid (each part usually is), so the known-block path is taken.
_LINE_PARTS = st.tuples(
    st.sampled_from([b"GET"] * 4 + [b"HEAD", b"POST", b"BREW", b"CONNECT", b"G T", b"", b"get"]),
    st.sampled_from([b" "] * 6 + [b"  ", b"\t", b""]),
    st.one_of(st.sampled_from([b"/", b"/a?b", b"/x/y.html?q=1&r=2"] * 3 + [b"/a#f", b"*", b"http://h/a", b"h:1",
                                                                         b"/\xff", b"/a b", b"/a\x7f"]),
              st.binary(max_size=12).map(lambda b: b"/" + b)),
    st.sampled_from([b" "] * 6 + [b"  ", b"\t"]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"] * 3 + [b"HTTP/2.0", b"HTTP/1.1 ", b"http/1.1", b"HTTP/1.10"]),
)
_REQUEST_LINES = st.one_of(_LINE_PARTS.map(b"".join), st.binary(max_size=40))


@settings(max_examples=500, deadline=None)
@given(_REQUEST_LINES, st.sampled_from([b"Host: h\r\nUser-Agent: t", b"Host: h\r\nConnection: close",
                                                            b"Host: h\r\nContent-Length: 5", b"Host: h\r\nExpect: 100-continue"]))
def test_any_request_line_before_a_known_field_block_parses_as_the_full_rules_say(line: bytes, block: bytes) -> None:
    """Whatever precedes a cached field block, parse_head answers exactly what the full rules do."""
    from hypothesis import assume

    from x15g.http import parser

    assume(not line.startswith(b"\r\n") and b"\r\n\r\n" not in line + b"\r\n")  # still one head, as given
    limits = parser.Limits()
    for i in range(2):  # the first sighting caches the block, for HTTP/1.1 and HTTP/1.0
        for version in (b"1.1", b"1.0"):
            parser.parse_head(b"GET /warm%d HTTP/%s\r\n%s\r\n\r\n" % (i, version, block), limits)
    assert_parsed_as_the_full_rules_say(line + b"\r\n" + block + b"\r\n\r\n", limits)


def test_heads_that_differ_only_in_fields_no_stored_answer_reads_select_alike() -> None:
    """Once a block is known its requests carry `selecting`: the same for another user agent,
    cookie, Referer or query, different for another Accept-Encoding, Range, If-* or Connection."""
    from x15g.http import parser

    limits = parser.Limits()

    def selecting(fields: bytes, target: bytes = b"/a") -> object:
        head = b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n\r\n" % (target, fields)
        for _ in range(2):
            parser.parse_head(head, limits)  # the first sighting keeps the block
        request = parser.parse_head(head, limits)[0]
        known = parser.known_head(head, limits)
        assert known is not None and parser.request_of(known).selecting == request.selecting
        assert_selecting_follows_from(request)
        return request.selecting

    plain = selecting(b"User-Agent: a\r\nCookie: s=1\r\nAccept-Encoding: gzip")
    assert plain is not None
    assert selecting(b"User-Agent: b\r\nCookie: s=2\r\nReferer: /p\r\nAccept-Encoding: gzip") == plain
    assert selecting(b"User-Agent: a\r\nAccept-Encoding: gzip", b"/a?n=1") == plain
    for other in (b"Accept-Encoding: br", b"Accept-Encoding: gzip\r\nRange: bytes=0-1",
                  b"Accept-Encoding: gzip\r\nIf-None-Match: \"x\"", b"Accept-Encoding: gzip\r\nConnection: close",
                  b"Accept-Encoding: gzip\r\nIf-Modified-Since: Thu, 01 Jan 2026 00:00:00 GMT"):
        assert selecting(other) != plain
    assert selecting(b"Content-Length: 3") is None  # a body: never a stored answer


def test_known_head_takes_only_one_whole_head_within_the_limits() -> None:
    """Pipelined, incomplete or oversized heads are never read from the caches by known_head:
    parse_head gives its verdict on them."""
    from x15g.http import parser

    limits = parser.Limits(max_header_size=200)
    block = b"Host: h\r\nUser-Agent: pipelined-test"
    head = b"GET /a HTTP/1.1\r\n%s\r\n\r\n" % block
    parser.parse_head(head, limits)
    assert parser.known_head(head, limits) is not None
    assert parser.known_head(head + head, limits) is None  # two requests
    assert parser.known_head(head[:-2], limits) is None  # not complete yet
    assert parser.known_head(b"\r\n" + head, limits) is None  # an empty line first
    assert parser.known_head(head, parser.Limits()) is None  # filled under other limits
    parser.parse_head(head, limits)
    long_line = b"GET /%s HTTP/1.1\r\n%s\r\n\r\n" % (b"a" * 190, block)
    assert parser.known_head(long_line, limits) is None
    with pytest.raises(ProtocolError) as raised:
        parser.parse_head(long_line, limits)
    assert raised.value.status == 431


def test_the_parse_caches_stay_bounded_whatever_the_client_sends() -> None:
    """Field blocks and heads that each repeat (and so are kept) never grow the caches past their size."""
    from x15g.http import parser

    limits = parser.Limits()
    for i in range(3 * parser._CACHE_SIZE):
        head = b"GET /a HTTP/1.1\r\nHost: h\r\nCookie: s=%d\r\n\r\n" % i
        for _ in range(4):  # the block is kept on its first sighting, the whole head on its third
            parser.parse_head(head, limits)
        assert len(parser._parsed_fields) <= parser._CACHE_SIZE and len(parser._parsed_heads) <= parser._CACHE_SIZE
    assert parser._parsed_heads and parser._parsed_fields  # it did keep them
