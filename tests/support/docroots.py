"""The small document roots that the fixtures serve, with files of known content."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.clients import BIG_SIZE


def make_docroot(base: Path) -> Path:
    """A document root with a few files of known content."""
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "sub" / "index.html").write_bytes(b"<p>sub</p>\n")
    (root / "one_k.bin").write_bytes(bytes(range(256)) * 4)
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / ".secret").write_bytes(b"TOPSECRET\n")
    os.chmod(root, 0o755)
    return root


def make_root(tmp_path: Path) -> Path:
    """tmp/root (served) next to tmp/secret (must never be served)."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "sub" / "a.txt").write_bytes(b"a\n")
    (root / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (tmp_path / "secret").write_bytes(b"TOP-SECRET-OUTSIDE-ROOT\n")
    os.chmod(root, 0o755)
    os.chmod(tmp_path, 0o755)
    return root
