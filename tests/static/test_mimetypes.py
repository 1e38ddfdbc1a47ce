"""Content-Type choice: stdlib table, extras, overrides, charset, prefix overrides."""

from __future__ import annotations

import pytest

from x15g.config import default_settings
from x15g.static.mimetypes import MimeMap, with_charset


@pytest.mark.parametrize(
    "name, expected",
    [
        ("index.html", "text/html; charset=utf-8"),
        ("a.CSS", "text/css; charset=utf-8"),
        ("app.js", "application/javascript; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("feed.xml", "text/xml; charset=utf-8"),
        ("logo.png", "image/png"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("a.tar.gz", "application/gzip"),  # sent as is, not as an encoding
        ("font.woff2", "font/woff2"),
        ("README", "application/octet-stream"),
        ("file.unknownext", "application/octet-stream"),
        ("notes.md", "text/markdown; charset=utf-8"),
        ("font.ttf", "font/ttf"),
        ("font.otf", "font/otf"),
        ("app.js.map", "application/json; charset=utf-8"),
        ("event.ics", "text/calendar; charset=utf-8"),
        ("config.yaml", "application/yaml"),
        ("config.yml", "application/yaml"),
        ("data.jsonld", "application/ld+json; charset=utf-8"),
    ],
)
def test_default_table(name: str, expected: str) -> None:
    mime = MimeMap(default_settings(root="/"))
    assert mime.content_type("/x/" + name, name) == expected


def test_settings_overrides_and_default_type() -> None:
    settings = default_settings(root="/", mime_type=(".md=text/x-markdown", "js=text/javascript"), default_type="text/plain")
    mime = MimeMap(settings)
    assert mime.content_type("/a.md", "a.md") == "text/x-markdown; charset=utf-8"
    assert mime.content_type("/a.js", "a.js") == "text/javascript; charset=utf-8"
    assert mime.content_type("/LICENSE", "LICENSE") == "text/plain; charset=utf-8"


def test_prefix_override_for_the_specweb_file_set() -> None:
    mime = MimeMap(default_settings(root="/"), {"/file_set/": "text/plain"})
    assert mime.content_type("/file_set/dir00001/class1_7", "class1_7") == "text/plain; charset=utf-8"
    assert mime.content_type("/other/class1_7", "class1_7") == "application/octet-stream"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/plain; charset=latin-1", "text/plain; charset=latin-1"),
        ("application/manifest+json", "application/manifest+json; charset=utf-8"),
        ("image/jpeg", "image/jpeg"),
    ],
)
def test_with_charset(value: str, expected: str) -> None:
    assert with_charset(value) == expected
