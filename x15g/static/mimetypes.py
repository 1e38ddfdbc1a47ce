"""Content-Type of a served file: stdlib table + a few modern types + settings overrides.

Our own `mimetypes.MimeTypes()` instance holds the stdlib's built-in strict table only, so the
answer does not depend on /etc/mime.types of the machine or on global state another library
changed; types the stdlib changed between Python versions are pinned in `_EXTRA`. Lookups happen once per cache fill, not per request.
"""

from __future__ import annotations

import mimetypes as _stdlib
import posixpath
from typing import Any, Mapping

# Types the stdlib table lacks or files it treats as encodings (`.gz`), which a static server
# sends as they are.
_EXTRA = {
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".br": "application/x-brotli",
    ".zst": "application/zstd",
    ".md": "text/markdown",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".js": "application/javascript",     # pinned: Python 3.12's table says text/javascript
    ".mjs": "text/javascript",
    ".ttf": "font/ttf",                  # RFC 8081
    ".otf": "font/otf",
    ".map": "application/json",          # JavaScript/CSS source maps
    ".ics": "text/calendar",             # RFC 5545
    ".yaml": "application/yaml",         # RFC 9512
    ".yml": "application/yaml",
    ".jsonld": "application/ld+json",
}

_CHARSET_TYPES = ("application/javascript", "application/json", "application/xml")


def with_charset(content_type: str) -> str:
    """Append `; charset=utf-8` to text types and JSON/JavaScript/XML (unless a parameter is set)."""
    if ";" in content_type:
        return content_type
    if content_type.startswith("text/") or content_type in _CHARSET_TYPES or content_type.endswith(("+json", "+xml")):
        return content_type + "; charset=utf-8"
    return content_type


class MimeMap:
    """File name -> Content-Type value (charset included).

    `type_overrides` maps a URL path prefix to a type that wins over the extension (e.g. the
    SPECweb file set, whose files have no extension and are text/plain).
    """

    def __init__(self, settings: Any, type_overrides: Mapping[str, str] | None = None) -> None:
        table = dict(_stdlib.MimeTypes(strict=True).types_map[True])
        table.update(_EXTRA)
        for rule in settings.mime_type:
            ext, _, value = rule.partition("=")
            ext = ext.strip().lower()
            table[ext if ext.startswith(".") else "." + ext] = value.strip()
        self._table = table
        self._default = settings.default_type
        self._prefixes = tuple(sorted((type_overrides or {}).items(), key=lambda item: -len(item[0])))

    def content_type(self, url_path: str, file_name: str) -> str:
        """The Content-Type for `file_name` served at `url_path` (decoded, normalised)."""
        for prefix, value in self._prefixes:
            if url_path.startswith(prefix):
                return with_charset(value)
        ext = posixpath.splitext(file_name)[1].lower()
        return with_charset(self._table.get(ext, self._default) if ext else self._default)
