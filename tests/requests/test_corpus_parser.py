"""Every raw request of the shared corpora through the pure parser and body decoders.

valid   -> the bytes parse into the expected number of complete requests;
invalid -> refused: ProtocolError/HTTPError, or (see `refused`) an unknown method answered 501,
           or the connection closes before the offending bytes (llhttp's "data after close");
safe    -> http-garden: refused, or exactly the requests a strict parser sees (no smuggling).

DIVERGENCES lists the cases a peer parser accepts and x15g deliberately refuses, each with the
RFC rule that makes refusing correct; the test checks each of them is indeed refused, so the
table cannot go stale. Nothing any peer refuses is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.support.corpus import MISSING, Case, corpus_available, load_all, must_run_corpus
from x15g.errors import HTTPError
from x15g.http.body import ChunkedBody, ContentLengthBody
from x15g.http.messages import Request
from x15g.http.parser import KNOWN_METHODS, Limits, parse_head

NO_HOST = "HTTP/1.1 request without Host: RFC 9112 §3.2 says MUST answer 400"
NON_ASCII_TARGET = "non-ASCII byte in the request-target (RFC 3986 §2; llhttp strict refuses too)"
TE_UNKNOWN = "transfer coding other than chunked: RFC 9112 §6.1 SHOULD answer 501"
TE_WITH_CL = "Transfer-Encoding with Content-Length: RFC 9112 §6.3 allows refusing (smuggling)"
WS_BEFORE_COLON = "whitespace before ':': RFC 9112 §5.1 MUST answer 400"
USERINFO = "userinfo in an http(s) target: RFC 9110 §4.2.4 SHOULD treat as an error"
HTTP09 = "no HTTP-version (HTTP/0.9 simple request): not HTTP/1.x, RFC 9112 §3"
NOT_HTTP = "not the HTTP protocol (ICE/RTSP): RFC 9112 §2.3 HTTP-version required"
STAR_NOT_OPTIONS = "'*' target with a method other than OPTIONS: RFC 9112 §3.2.4"

# case id -> why x15g refuses what the peer (gunicorn or llhttp) accepts.
DIVERGENCES: dict[str, str] = {
    "gunicorn/valid/004": NO_HOST,
    "gunicorn/valid/005": NO_HOST,
    "gunicorn/valid/006": NO_HOST,
    "gunicorn/valid/007": NO_HOST,
    "gunicorn/valid/009": NO_HOST,
    "gunicorn/valid/010": NO_HOST,
    "gunicorn/valid/011": NO_HOST,
    "gunicorn/valid/012": NO_HOST,
    "gunicorn/valid/013": NO_HOST,
    "gunicorn/valid/014": NO_HOST,
    "gunicorn/valid/018": NO_HOST,
    "gunicorn/valid/021": NO_HOST,
    "gunicorn/valid/022": NO_HOST,
    "gunicorn/valid/023": NO_HOST,
    "gunicorn/valid/025": NO_HOST,
    "gunicorn/valid/025_line": NO_HOST,
    "gunicorn/valid/027": NON_ASCII_TARGET,
    "gunicorn/valid/029": NO_HOST,
    "gunicorn/valid/030": NO_HOST,
    "gunicorn/valid/031": NO_HOST,
    "gunicorn/valid/031compat2": NO_HOST,
    "gunicorn/valid/100": NO_HOST,
    "gunicorn/valid/rfc9112_smuggle_gzip_chunked_01": TE_UNKNOWN,
    "gunicorn/valid/rfc9112_smuggle_te_identity_chunked_01": TE_UNKNOWN,
    "gunicorn/valid/rfc9112_target_absolute_userinfo_01": USERINFO,
    "llhttp/connection/setting-flag": NO_HOST,
    "llhttp/connection/restarting-when-keep-alive-is-explicitly": NO_HOST,
    "llhttp/connection/setting-flag-on-close": NO_HOST,
    "llhttp/connection/setting-flag-on-close-followed-by-tab": NO_HOST,
    "llhttp/connection/sample": NO_HOST,
    "llhttp/content-length/content-length-with-zeroes": NO_HOST,
    "llhttp/content-length/content-length-with-follow-up-headers": NO_HOST,
    "llhttp/content-length/spaces-in-content-length-surrounding": NO_HOST,
    "llhttp/content-length/tabs-in-content-length-surrounding": NO_HOST,
    "llhttp/method/report-request": NO_HOST,
    "llhttp/method/m-search-request": STAR_NOT_OPTIONS,
    "llhttp/method/source-request-with-ice": NOT_HTTP,
    "llhttp/method/options-request-with-rtsp": NOT_HTTP,
    "llhttp/method/announce-request-with-rtsp": NOT_HTTP,
    "llhttp/pipelining/should-parse-multiple-events": NO_HOST,
    "llhttp/sample/simple-request": NO_HOST,
    "llhttp/sample/request-with-method-starting-with-h": NO_HOST,
    "llhttp/sample/dumbpack": NO_HOST,
    "llhttp/sample/no-headers-and-no-body": NO_HOST,
    "llhttp/sample/one-header-and-no-body": NO_HOST,
    "llhttp/sample/prefix-newline": NO_HOST,
    "llhttp/sample/no-http-version": HTTP09,
    "llhttp/sample/request-starting-with-crlf": NO_HOST,
    "llhttp/sample/extended-characters": NO_HOST,
    "llhttp/sample/255-ascii-in-header-value": NO_HOST,
    "llhttp/transfer-encoding/parsing-and-setting-flag": NO_HOST,
    "llhttp/transfer-encoding/parse-chunks-with-lowercase-size": NO_HOST,
    "llhttp/transfer-encoding/parse-chunks-with-uppercase-size": NO_HOST,
    "llhttp/transfer-encoding/post-with-transfer-encoding-chunked": NO_HOST,
    "llhttp/transfer-encoding/two-chunks-and-triple-zero-prefixed-end-chunk": NO_HOST,
    "llhttp/transfer-encoding/trailing-headers": NO_HOST,
    "llhttp/transfer-encoding/chunk-extensions": NO_HOST,
    "llhttp/transfer-encoding/chunk-extensions-quoting": NO_HOST,
    "llhttp/transfer-encoding/post-with-chunked-as-last-transfer-encoding": NO_HOST,
    "llhttp/transfer-encoding/post-with-chunked-as-last-transfer-encoding-multiple-headers":
        NO_HOST,
    "llhttp/uri/quotes-in-uri": NO_HOST,
    "llhttp/uri/query-url-with-question-mark": NO_HOST,
    "llhttp/uri/host-terminated-by-a-query-string": NO_HOST,
    "llhttp/uri/host-port-terminated-by-a-query-string": NO_HOST,
    "llhttp/uri/query-url-with-vertical-bar-character": NO_HOST,
    "llhttp/uri/host-port-terminated-by-a-space": NO_HOST,
    "llhttp/uri/fragment-in-uri": NO_HOST,
    "llhttp/uri/host-port-and-basic-auth": USERINFO,
}

# Corpus files whose bytes do not match their upstream expectation; judged on the heads only.
ARTIFACTS = {
    "gunicorn/valid/099": "the body in the file is shorter than its Content-Length (17914); "
                          "gunicorn's expectation checks the head only",
}

SKIP_NOTE = MISSING


@dataclass
class Outcome:
    """What a connection would see feeding `raw`: requests, then how the stream ended."""

    requests: list[Request] = field(default_factory=list)
    heads: int = 0  # request heads parsed (a last one may still wait for its body)
    end: str = "end"  # "end" | "incomplete" | "closed" | "error"
    error: HTTPError | None = None
    leftover: bytes = b""


def drive(raw: bytes, limits: Limits, stop_on_close: bool) -> Outcome:
    """Parse requests (head + body per its framing) from `raw` like a connection would."""
    out = Outcome()
    pos = 0
    try:
        while pos < len(raw):
            parsed = parse_head(raw[pos:], limits)
            if parsed is None:
                return _incomplete(out, raw[pos:])
            request, consumed = parsed
            pos += consumed
            out.heads += 1
            if request.chunked:
                body = ChunkedBody(limits)
            else:
                body = ContentLengthBody(request.content_length or 0)
            pos += body.feed(raw[pos:])
            if not body.done:
                out.end, out.leftover = "incomplete", raw[pos:]
                return out
            request.body = body.take()
            out.requests.append(request)
            if stop_on_close and (not request.keep_alive or request.method == "CONNECT"):
                out.end, out.leftover = "closed", raw[pos:]
                return out
    except HTTPError as exc:
        out.end, out.error = "error", exc
    return out


def _incomplete(out: Outcome, rest: bytes) -> Outcome:
    # Only empty lines left (e.g. a CRLF some clients add after a body): the stream ended cleanly.
    out.end = "end" if not rest.replace(b"\r\n", b"") else "incomplete"
    out.leftover = rest
    return out


def routed(out: Outcome) -> list[Request]:
    """The requests a server would hand to a resource: those before the first one the app must
    refuse by method (unknown method: 501; CONNECT: an origin server has no tunnels, 501 + close)."""
    result = []
    for request in out.requests:
        if request.method not in KNOWN_METHODS or request.method == "CONNECT":
            break
        result.append(request)
    return result


def refused(case: Case, out: Outcome, limits: Limits) -> bool:
    """Would a server refuse (and never route) the offending bytes of `case`?"""
    if out.end == "error" or len(routed(out)) < len(out.requests):
        return True
    if out.end == "incomplete":
        if case.incomplete_ok:
            return True  # waits for bytes that never come: header/body timeout, never routed
        # The head is still open, so nothing was routed yet; once the client ends it, it must
        # be refused (e.g. llhttp refuses "Content-Length: 1e21" before the head is complete).
        completed = drive(case.raw + case.second + b"\r\n\r\n", limits, stop_on_close=False)
        return completed.end == "error" or len(routed(completed)) < len(completed.requests)
    # llhttp flags bytes after a message that ends the connection; a server closes unread.
    return out.end == "closed" and bool(out.leftover)


def limits_for(case: Case) -> Limits:
    return Limits(**case.cfg)


CASES = load_all()


@pytest.mark.skipif(not corpus_available(), reason=SKIP_NOTE)
@pytest.mark.parametrize("case", CASES, ids=[c.case_id for c in CASES])
def test_corpus_case(case: Case) -> None:
    if case.expect == "skip":
        pytest.skip(case.note)
    llhttp = case.case_id.startswith("llhttp/")
    limits = limits_for(case)
    out = drive(case.raw + case.second, limits, stop_on_close=case.expect != "safe")
    if case.case_id in DIVERGENCES:
        assert out.end == "error", f"listed divergence no longer refused: {out}"
    elif case.expect == "valid":
        assert out.end != "error", f"refused: {out.error!r}"
        if case.case_id in ARTIFACTS:
            assert out.heads == case.requests, out
        else:
            assert llhttp or out.end in ("end", "closed"), out
            assert len(out.requests) == case.requests, out
    elif case.expect == "invalid":
        assert refused(case, out, limits), f"accepted: {out}"
        if llhttp:  # never route more than llhttp completed before its error
            assert len(routed(out)) <= (case.requests or 0), out
    else:  # http-garden "safe"
        if case.requests is None and not case.incomplete_ok:
            assert refused(case, out, limits), f"accepted: {out}"
        elif case.incomplete_ok:
            assert out.end == "incomplete" and not out.requests, out
        else:
            assert out.end == "end" and len(out.requests) == case.requests, out


def test_corpus_present_or_skipped() -> None:
    if not corpus_available():
        if must_run_corpus():
            pytest.fail(f"CI=true: {SKIP_NOTE}")
        pytest.skip(SKIP_NOTE)
    assert len(CASES) > 300


NO_HOST_CASES = [c for c in CASES if DIVERGENCES.get(c.case_id) == NO_HOST]


@pytest.mark.skipif(not corpus_available(), reason=SKIP_NOTE)
@pytest.mark.parametrize("case", NO_HOST_CASES, ids=[c.case_id for c in NO_HOST_CASES])
def test_no_host_divergence_is_only_the_host(case: Case) -> None:
    """With a Host line added to each HTTP/1.1 head, the peer's verdict must hold again."""
    raw = (case.raw + case.second).replace(b" HTTP/1.1\r\n", b" HTTP/1.1\r\nHost: h\r\n")
    out = drive(raw, limits_for(case), stop_on_close=True)
    if out.end == "error":
        assert out.error.status == 501 or "Transfer-Encoding" in out.error.reason, out
    else:
        assert len(out.requests) == case.requests, out


@pytest.mark.skipif(not corpus_available(), reason=SKIP_NOTE)
def test_divergence_table_names_real_cases() -> None:
    ids = {c.case_id for c in CASES if c.expect == "valid"}
    assert set(DIVERGENCES) <= ids
    assert set(ARTIFACTS) <= ids
