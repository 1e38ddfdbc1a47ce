"""The HTML wrapper of every dynamic reply (specweb99-like.md §5.2), byte for byte.

Kept free of other imports so the per-request CGI program loads it fast.
"""

from __future__ import annotations

_HEAD = b"<html>\n<head><title>SPECweb99 Dynamic GET & POST Test</title></head>\n<body>\n<p>SERVER_SOFTWARE = "
_TAIL = b"\n</pre>\n</body></html>\n"


def wrap_parts(qs: bytes, server: bytes, ip: bytes, script: bytes) -> tuple[bytes, bytes]:
    """The bytes before and after the body, so a large body can be sent without a copy."""
    prefix = (
        _HEAD + server + b"\n<p>REMOTE_ADDR = " + ip + b"\n<p>SCRIPT_NAME = " + script
        + b"\n<p>QUERY_STRING = " + qs + b"\n<pre>\n"
    )
    return prefix, _TAIL


def wrap(qs: bytes, body: bytes, server: bytes, ip: bytes, script: bytes) -> bytes:
    """WRAP(qs, body) of §5.2: `qs` raw (empty for a POST), `script` the request path."""
    prefix, tail = wrap_parts(qs, server, ip, script)
    return prefix + body + tail
