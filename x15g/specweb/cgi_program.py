"""The CGI program of the SPECweb99-like CGI GET (specweb99-like.md §5.4).

Started as a separate process for every request (`python -m x15g.specweb.cgi_program`): reads
QUERY_STRING, SCRIPT_NAME, REMOTE_ADDR, SERVER_SOFTWARE and DOCUMENT_ROOT (and SPECWEB_URLROOT,
default `/file_set/`) from its environment and writes a CGI response: `Content-Type: text/html`, a
blank line and WRAP(qs, file bytes) -- the same document as the standard dynamic GET (§5.3).
Bad input gets `Status: 400`, a missing file `Status: 404`. Only the standard library and the
import-free wrapper are loaded so a request costs one interpreter start-up and little more.
"""

from __future__ import annotations

import os
import sys

from x15g.specweb.wrap import wrap


def valid_path(qs: bytes, urlroot: bytes) -> bool:
    """`URLROOT dirNNNNN/classC_F` (§5.3), checked by hand: importing `re` costs 20 ms here."""
    rest = qs[len(urlroot):]
    return (qs.startswith(urlroot) and len(rest) == 17 and rest.startswith(b"dir") and rest[3:8].isdigit()
            and rest[8:14] == b"/class" and rest[14:15] in (b"0", b"1", b"2", b"3") and rest[15:16] == b"_"
            and rest[16:17].isdigit() and rest[16:17] != b"9")


def _error(status: str, reason: bytes) -> bytes:
    return b"Status: " + status.encode() + b"\r\nContent-Type: text/plain\r\n\r\n" + reason + b"\n"


def document(environ: dict[bytes, bytes]) -> bytes:
    """The whole CGI response for the meta-variables in `environ`."""
    qs = environ.get(b"QUERY_STRING", b"")
    urlroot = environ.get(b"SPECWEB_URLROOT", b"/file_set/")
    if environ.get(b"REQUEST_METHOD", b"GET") not in (b"GET", b"HEAD") or environ.get(b"PATH_INFO"):
        return _error("400 Bad Request", b"bad request")
    if b".." in qs or not valid_path(qs, urlroot):
        return _error("400 Bad Request", b"bad file path")
    root = environ.get(b"DOCUMENT_ROOT", b".")
    try:
        with open(os.path.join(root, qs[1:]), "rb") as f:
            data = f.read()
    except OSError:
        return _error("404 Not Found", b"no such file")
    body = wrap(qs, data, environ.get(b"SERVER_SOFTWARE", b""), environ.get(b"REMOTE_ADDR", b""),
                environ.get(b"SCRIPT_NAME", b""))
    return b"Content-Type: text/html\r\n\r\n" + body


def main() -> int:
    """Write the response to stdout; exit 0 (errors are answers, not crashes)."""
    out = document(dict(os.environb))
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
