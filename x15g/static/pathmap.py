"""Safe mapping of a URL path to a file under the document root.

Two steps with different costs. `split_path` is pure and runs on every cache miss: percent-decode
exactly once, refuse what has no safe meaning (NUL, encoded slash, backslash, invalid or overlong
UTF-8: 400), resolve `.`/`..` without ever climbing above the root, hide dotfiles (404). `resolve`
touches the disk (run it through DiskIO, once per cache fill): `realpath` on the joined path, then
refuse any symlink (`follow_symlinks` off) or any target outside the root (on).
"""

from __future__ import annotations

import errno
import os
from typing import Any
from urllib.parse import quote

from x15g.errors import HTTPError

_HEX = frozenset(b"0123456789abcdefABCDEF")


def percent_decode(raw: bytes) -> bytes:
    """Decode %XX once (RFC 3986 §2.1); a malformed escape, an encoded `/` or `\\` is a 400.

    An encoded slash would let one URL segment name two path segments, so it is refused rather
    than guessed at (nginx and Apache's default `AllowEncodedSlashes Off` agree).
    """
    if b"%" not in raw:
        return raw
    parts = raw.split(b"%")
    out = bytearray(parts[0])
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise HTTPError(400, "bad percent-encoding")
        byte = int(part[:2], 16)
        if byte == 0x2F or byte == 0x5C:
            raise HTTPError(400, "encoded slash in path")
        out.append(byte)
        out += part[2:]
    return bytes(out)


def split_path(raw: bytes, dotfiles: bool = False) -> tuple[tuple[str, ...], bool]:
    """Raw URL path -> (normalised segments, ended with a slash). Raises HTTPError 400/404.

    `..` above the root is a 400: such a request is an attack or a broken client, never a file.
    """
    if not raw.startswith(b"/"):
        raise HTTPError(400, "path must start with /")
    decoded = percent_decode(raw)
    if b"\x00" in decoded or b"\\" in decoded:
        raise HTTPError(400, "NUL or backslash in path")
    try:
        text = decoded.decode("utf-8")  # the strict codec refuses overlong forms and surrogates
    except UnicodeDecodeError:
        raise HTTPError(400, "path is not valid UTF-8") from None
    segments: list[str] = []
    for segment in text.split("/"):
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if not segments:
                raise HTTPError(400, "path climbs above the root")
            segments.pop()
            continue
        segments.append(segment)
    if not dotfiles:
        for segment in segments:
            if segment.startswith("."):
                raise HTTPError(404, "hidden file")
    trailing = text.endswith("/") or text.endswith("/.") or text.endswith("/..")
    return tuple(segments), trailing


class PathMap:
    """URL path -> checked filesystem path under `settings.root` (realpath'd once here)."""

    def __init__(self, settings: Any) -> None:
        self.root = os.path.realpath(settings.root)
        self.follow_symlinks = bool(settings.follow_symlinks)
        self.dotfiles = bool(settings.dotfiles)
        self._prefix = self.root.rstrip("/") + "/"

    def split(self, raw: bytes) -> tuple[tuple[str, ...], bool]:
        """`split_path` with this map's dotfile rule."""
        return split_path(raw, self.dotfiles)

    def resolve(self, segments: tuple[str, ...]) -> str:
        """Blocking: the real path of `segments`, or HTTPError 404 when it may not be served.

        A path that does not exist resolves fine (the open then fails with 404). Symlinks are
        refused by comparing realpath with the joined path: equal means no component is a link.
        """
        joined = os.path.join(self.root, *segments) if segments else self.root
        try:
            real = os.path.realpath(joined)
        except OSError as exc:  # e.g. ELOOP on Python versions that raise it
            raise HTTPError(404, f"cannot resolve: {errno.errorcode.get(exc.errno or 0, exc.errno)}") from None
        if real == joined:
            return real
        if not self.follow_symlinks:
            raise HTTPError(404, "symlink not followed")
        if real != self.root and not real.startswith(self._prefix):
            raise HTTPError(404, "symlink leaves the root")
        if not self.dotfiles and any(part.startswith(".") for part in real[len(self._prefix) :].split("/")):
            raise HTTPError(404, "symlink to a hidden file")
        return real

    def url_of(self, segments: tuple[str, ...], directory: bool) -> str:
        """A safe absolute URL path for `segments` (re-encoded, so `//host` cannot appear)."""
        path = "/" + "/".join(quote(segment, safe="") for segment in segments)
        if directory and not path.endswith("/"):
            path += "/"
        return path
