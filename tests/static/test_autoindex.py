"""Directory listings: escaped, sorted, hidden and symlinked names left out."""

from __future__ import annotations

import os
from pathlib import Path

from x15g.static.autoindex import render_listing


def test_listing(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "a <script>.txt").write_text("a")
    (tmp_path / "zdir").mkdir()
    (tmp_path / ".env").write_text("secret")
    os.symlink(tmp_path / "b.txt", tmp_path / "link")
    page = render_listing(str(tmp_path), "/x&y/")
    assert b"<title>Index of /x&amp;y/</title>" in page
    assert b"a &lt;script&gt;.txt" in page and b'href="a%20%3Cscript%3E.txt"' in page
    assert page.index(b"zdir/") < page.index(b"a &lt;") < page.index(b"b.txt")
    assert b".env" not in page and b"link" not in page
    assert b'href="../"' in page
    shown = render_listing(str(tmp_path), "/", dotfiles=True, follow_symlinks=True)
    assert b".env" in shown and b"link" in shown and b'href="../"' not in shown
