"""Directory listings for `--autoindex` (off by default): sorted, HTML-escaped, links re-encoded.

`render_listing` is blocking (it scans the directory): call it through DiskIO.run. Hidden names
are left out unless dotfiles are served, and symlinks unless they are followed, so the listing
never advertises what the server would refuse.
"""

from __future__ import annotations

import html
import os
from urllib.parse import quote


def render_listing(path: str, url_path: str, dotfiles: bool = False, follow_symlinks: bool = False) -> bytes:
    """Blocking: an HTML page listing directory `path`, shown at URL `url_path` (ends with /)."""
    names: list[tuple[str, bool]] = []
    with os.scandir(path) as scan:
        for item in scan:
            if item.name.startswith(".") and not dotfiles:
                continue
            try:
                if item.is_symlink() and not follow_symlinks:
                    continue
                is_dir = item.is_dir()
            except OSError:
                continue
            names.append((item.name, is_dir))
    names.sort(key=lambda pair: (not pair[1], pair[0]))
    title = html.escape(url_path)
    rows = ['<li><a href="../">../</a></li>'] if url_path != "/" else []
    for name, is_dir in names:
        suffix = "/" if is_dir else ""
        href = html.escape(quote(name, safe="") + suffix, quote=True)
        rows.append(f'<li><a href="{href}">{html.escape(name)}{suffix}</a></li>')
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of "
        f"{title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
        + "\n".join(rows)
        + "\n</ul>\n</body></html>\n"
    )
    return page.encode("utf-8", "surrogateescape")
