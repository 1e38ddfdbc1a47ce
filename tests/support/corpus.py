"""Loaders for the raw HTTP request corpora (gunicorn, llhttp, http-garden), read where they are.

The corpora are not part of this repository: `X15G_CORPUS` names their directory (default: a
`shared/corpus` directory beside the checkout). Without them the corpus tests skip with that
reason, and fail when `CI=true` (CI must run them).

Each loader returns `Case` records: an id, the raw bytes a client would send, and what a strict
server must do with them. The module knows nothing of x15g's parser, so the server-level tests
can send the same payloads to a real server.

Expectations (`Case.expect`):
- "valid": the bytes are `requests` complete, well-formed requests (None when unknown);
- "invalid": the bytes must be refused (400-class answer and close); `incomplete_ok` says the
  upstream verdict is "input ends too early" (e.g. gunicorn's NoMoreData), so a server that keeps
  waiting for more bytes (and never routes anything) is also right;
- "safe" (http-garden): refused, or parsed into exactly `requests` requests (see GARDEN_VERDICTS);
- "skip": the case depends on a feature/option x15g does not have; `note` says which.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

CORPUS_DIR = Path(os.environ.get("X15G_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus")
MISSING = (f"HTTP request corpus not found at {CORPUS_DIR} (set X15G_CORPUS to its directory: "
           "gunicorn/, llhttp/, http-garden/)")


@dataclass(frozen=True, slots=True)
class Case:
    """One corpus entry: `raw` bytes and the expectation (see the module docstring)."""

    case_id: str
    raw: bytes
    expect: str
    requests: int | None = None
    incomplete_ok: bool = False
    cfg: dict = field(default_factory=dict)
    note: str = ""
    second: bytes = b""  # a payload sent after `raw` (http-garden item 48)


def corpus_available() -> bool:
    """True when the corpus directory exists."""
    return CORPUS_DIR.is_dir()


def must_run_corpus() -> bool:
    """In CI (`CI=true`) a missing corpus is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def expand_escapes(text: str) -> bytes:
    """Expand the python-style escapes (\\r \\n \\t \\0 \\xHH ...) of a corpus text into bytes."""
    # The files are UTF-8: a literal non-ASCII character (gunicorn's "ß") is sent as its UTF-8
    # bytes, as gunicorn's own test loader does.
    raw = text.encode("utf-8")
    return codecs.escape_decode(raw)[0]


# --- gunicorn: manifest.json + valid/*.http, invalid/*.http -------------------------------------

# gunicorn Config options that map onto x15g Limits (name -> Limits field).
GUNICORN_LIMITS = {
    "limit_request_field_size": "max_field_size",
    "limit_request_fields": "max_header_count",
    "limit_request_line": "max_request_line",
}
# Options with no x15g equivalent: a case that depends on one is skipped with this reason.
GUNICORN_UNSUPPORTED = {
    "proxy_protocol": "x15g does not implement the PROXY protocol",
    "permit_obsolete_folding": "x15g always refuses obs-fold (RFC 9112 §5.2)",
    "header_map": "x15g keeps '_' in field names as a distinct token char (no header mapping)",
    "forwarded_allow_ips": "x15g reads X-Forwarded-Proto from trusted peers after parsing; it does not judge X-Forwarded-Ssl conflicts",
    "strip_header_spaces": "x15g always refuses whitespace before ':' (RFC 9112 §5.1)",
    "casefold_http_method": "x15g keeps methods case-sensitive (RFC 9110 §9.1)",
    "permit_unconventional_http_method": "x15g accepts any token method already (no option)",
}
_INCOMPLETE_ERRORS = {"NoMoreData", "ChunkMissingTerminator"}


def load_gunicorn_file(path: Path) -> bytes:
    """Read a gunicorn .http file: real newlines are not data; escapes are expanded."""
    text = path.read_text("utf-8").replace("\r", "").replace("\n", "")
    return expand_escapes(text)


# gunicorn's defaults differ from ours; its cases are judged with its limits. gunicorn counts the
# CRLF in limit_request_field_size (a 97-byte line breaks a limit of 98), we count the line only.
GUNICORN_DEFAULT_LIMITS = {"max_request_line": 4094, "max_field_size": 8190 - 2}


def _gunicorn_cfg(cfg: dict) -> tuple[dict, str]:
    """Map a gunicorn cfg onto Limits overrides (keyword arguments), or return a skip note."""
    limits: dict = dict(GUNICORN_DEFAULT_LIMITS)
    for key, value in cfg.items():
        if key in GUNICORN_LIMITS:
            number = int(value) or 8190  # 0: gunicorn falls back to its default
            if key == "limit_request_field_size":
                number -= 2
            limits[GUNICORN_LIMITS[key]] = number
        elif key == "permit_unconventional_http_method":
            continue  # we accept every token method anyway
        else:
            return limits, GUNICORN_UNSUPPORTED.get(key, f"unsupported gunicorn option {key}")
    return limits, ""


def load_gunicorn() -> list[Case]:
    """All gunicorn cases from manifest.json (`cfg` holds Limits overrides for the case)."""
    base = CORPUS_DIR / "gunicorn"
    manifest = json.loads((base / "manifest.json").read_text("utf-8"))
    cases = []
    for name, meta in sorted(manifest.items()):
        raw = load_gunicorn_file(base / f"{name}.http")
        limits, note = _gunicorn_cfg(meta.get("cfg", {}))
        expect = "skip" if note else meta["kind"]
        cases.append(Case(
            case_id=f"gunicorn/{name}", raw=raw, expect=expect,
            requests=meta.get("requests"), cfg=limits, note=note,
            incomplete_ok=meta.get("error") in _INCOMPLETE_ERRORS,
        ))
    return cases


# --- llhttp: *.md sections with a meta comment, an http block and a log block ------------------

_SECTION = re.compile(r"^#{2,4} (.+)$", re.M)
_META = re.compile(r"<!-- meta=(\{.*?\}) -->")
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
_LLHTTP_ESCAPE = re.compile(rb"\\(r|n|t|f|x[0-9a-fA-F]{2}|[0-7]{3})")  # "\\\\" stays two bytes


def _llhttp_unescape(match: re.Match) -> bytes:
    token = match.group(1)
    simple = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"f": b"\f"}
    if token in simple:
        return simple[token]
    if token.startswith(b"x"):
        return bytes([int(token[1:], 16)])
    return bytes([int(token, 8)])


def llhttp_bytes(block: str) -> bytes:
    """Turn an llhttp ```http block into bytes (rules in the corpus SOURCE.txt)."""
    if block.endswith("\n"):
        block = block[:-1]
    block = block.replace("\\\n", "").replace("\n", "\r\n")
    return _LLHTTP_ESCAPE.sub(_llhttp_unescape, block.encode("utf-8"))


def _llhttp_sections(text: str):
    """Yield (title, meta, http_block, log_block) per section that has a meta comment."""
    starts = [(m.start(), m.group(1).strip()) for m in _SECTION.finditer(text)]
    for i, (pos, title) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        body = text[pos:end]
        meta = _META.search(body)
        if not meta:
            continue
        blocks = dict((kind, content) for kind, content in _BLOCK.findall(body))
        if "http" in blocks and "log" in blocks:
            yield title, json.loads(meta.group(1)), blocks["http"], blocks["log"]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def load_llhttp() -> list[Case]:
    """llhttp request cases: strict ones ("request" without "pause") are checked, others skipped.

    A log with "error code=" means llhttp (strict) rejects the bytes; `requests` is the number of
    "message complete" events (for invalid cases: completed before the error).
    """
    cases: list[Case] = []
    seen: set[str] = set()
    for path in sorted((CORPUS_DIR / "llhttp").glob("*.md")):
        for title, meta, http, log in _llhttp_sections(path.read_text("utf-8")):
            case_id = f"llhttp/{path.stem}/{_slug(title)}"
            n = 2
            while case_id in seen:
                case_id = f"llhttp/{path.stem}/{_slug(title)}-{n}"
                n += 1
            seen.add(case_id)
            kind = meta.get("type", "")
            completed = log.count("message complete")
            error = re.search(r'error code=\d+ reason="([^"]*)"', log)
            expect, note = ("invalid", error.group(1)) if error else ("valid", "")
            if kind != "request":
                expect, note = "skip", f"llhttp {kind} (not strict request mode)"
            elif "pause" in meta or "skipBody" in meta:
                expect, note = "skip", "llhttp callback test (pause/skipBody), not parsing"
            cases.append(Case(case_id, llhttp_bytes(http), expect, completed, note=note))
    return cases


# --- http-garden: server_bugs.tsv payloads -------------------------------------------------------

# Our verdict per http-garden item: "refused" (400/501 and close), or the number of requests a
# strict parser sees in the payload (then nothing may be smuggled: all bytes are those requests),
# or "incomplete" (a well-formed head whose body has not fully arrived: the server waits, then
# times out; no second request is ever seen).
GARDEN_VERDICTS: dict[int, tuple[str | int, str]] = {
    1: ("refused", "chunk-size '0_2e' is not 1*HEXDIG"),
    2: ("refused", "NUL / bare CR in a field value"),
    3: ("refused", "whitespace between field name and ':' (RFC 9112 §5.1)"),
    4: ("refused", "whitespace before the first field line (RFC 9112 §2.2)"),
    5: ("refused", "'HTTP/1.32' is not HTTP-version"),
    6: ("refused", "method is not a token"),
    7: ("refused", "'!' is not a valid request-target form"),
    8: ("refused", "non-ASCII byte in a field name"),
    9: ("refused", "bare LF in the request line"),
    10: ("refused", "Content-Length '+1_0' is not 1*DIGIT"),
    11: ("refused", "chunked applied twice / HTTP/1.1 without Host"),
    12: ("refused", "'\\xa0chunked\\xa0' is not the chunked coding (never stripped)"),
    13: ("refused", "bare CR in a field line"),
    14: ("refused", "CTLs and delimiters in a field name"),
    15: ("refused", "bare CR in the version"),
    16: ("refused", "empty Content-Length"),
    17: ("refused", "empty chunk-size"),
    18: ("refused", "empty field name"),
    19: ("refused", "bare LF line terminators"),
    20: ("refused", "\\x85 in a field name"),
    21: ("refused", "Transfer-Encoding together with Content-Length"),
    22: ("refused", "chunk-size '0_2e' is not 1*HEXDIG"),
    23: ("refused", "conflicting Content-Length fields"),
    24: ("refused", "'HTTP/4294967295.255' is not HTTP-version"),
    25: ("refused", "HTTP/1.1 without Host"),
    26: ("refused", "negative Content-Length"),
    27: ("refused", "empty field name"),
    28: ("refused", "field line without ':'"),
    29: ("refused", "Content-Length '1Z' is not 1*DIGIT"),
    30: ("refused", "bare CR starting a field line"),
    31: ("refused", "bare CR in a chunk-size line"),
    32: ("incomplete", "'010' is a valid Content-Length (10, RFC 9110 §8.6): waits for 2 more bytes"),
    33: ("refused", "conflicting Content-Length fields"),
    34: ("refused", "bare CR in a field value"),
    35: ("refused", "NUL in a field value"),
    36: ("refused", "bare CR in a chunk extension"),
    37: ("refused", "field line without ':' ('Transfer-')"),
    38: ("refused", "empty Content-Length"),
    39: ("refused", "HTTP/1.1 without Host"),
    40: ("refused", "NUL method and malformed version"),
    41: (1, "obs-text \\x85/\\xa0 kept in the value (never stripped), one request"),
    42: ("refused", "empty Content-Length / HTTP/1.1 without Host"),
    43: ("refused", "NUL in a field value"),
    44: ("refused", "unknown transfer coding 'blegh' (501)"),
    45: ("refused", "HTTP/1.1 without Host"),
    46: ("refused", "Host with non-ASCII bytes; '\\xffchunked\\xff' is no chunked coding"),
    47: ("refused", "chunk-size 'INVALID!!!'"),
    48: (2, "CL 0 request, then a POST whose 34-byte body is the second payload"),
}


def load_garden() -> list[Case]:
    """http-garden server-bug payloads with x15g's verdict (GARDEN_VERDICTS)."""
    cases = []
    lines = (CORPUS_DIR / "http-garden" / "server_bugs.tsv").read_text("utf-8").splitlines()
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        number = int(parts[0])
        verdict, note = GARDEN_VERDICTS[number]
        second = expand_escapes(parts[3]) if len(parts) > 3 and parts[3] else b""
        cases.append(Case(
            case_id=f"garden/{number:02d}", raw=expand_escapes(parts[2]), expect="safe",
            requests=verdict if isinstance(verdict, int) else None,
            incomplete_ok=verdict == "incomplete", note=f"{verdict}: {note}", second=second,
        ))
    return cases


def load_all() -> list[Case]:
    """Every case of the three corpora (empty when the corpus directory is absent)."""
    if not corpus_available():
        return []
    return load_gunicorn() + load_llhttp() + load_garden()
