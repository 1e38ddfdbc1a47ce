"""x15g-precompress (x15g/static/precompress.py): which files get sidecars, mtimes, idempotence, brotli optional."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HAVE_BROTLI = importlib.util.find_spec("brotli") is not None


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "x15g.static.precompress", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "assets").mkdir(parents=True)
    (root / "app.css").write_text("body { color: red; }\n" * 200)
    (root / "assets" / "main.js").write_text("console.log('x15g');\n" * 300)
    (root / "tiny.css").write_text("a{}\n")                   # below --min-size
    (root / "photo.jpg").write_bytes(b"\xff\xd8" + b"j" * 5000)  # not a compressible type
    (root / "random.txt").write_bytes(os.urandom(4000))       # compresses to more than it is
    os.utime(root / "app.css", (1_600_000_000, 1_600_000_000))
    return root


@pytest.mark.parametrize("name, has_gz", [
    ("app.css", True), ("assets/main.js", True), ("tiny.css", False), ("photo.jpg", False), ("random.txt", False),
])
def test_gzip_sidecars(tree: Path, name: str, has_gz: bool) -> None:
    assert run_tool(str(tree)).returncode == 0
    original = tree / name
    sidecar = original.with_name(original.name + ".gz")
    assert sidecar.exists() is has_gz
    if has_gz:
        assert gzip.decompress(sidecar.read_bytes()) == original.read_bytes()
        assert sidecar.stat().st_mtime_ns == original.stat().st_mtime_ns
        assert sidecar.stat().st_size < original.stat().st_size
    assert not original.with_name(original.name + ".br").exists()  # only with --brotli


def test_second_run_is_idempotent_and_picks_up_changes(tree: Path) -> None:
    first = run_tool(str(tree))
    assert "written" in first.stdout
    second = run_tool(str(tree))
    assert "written" not in second.stdout and "fresh" in second.stdout
    (tree / "app.css").write_text("p { margin: 0 }\n" * 100)
    run_tool(str(tree))
    assert gzip.decompress((tree / "app.css.gz").read_bytes()) == (tree / "app.css").read_bytes()


def test_stale_sidecar_that_no_longer_pays_is_removed(tree: Path) -> None:
    run_tool(str(tree))
    (tree / "app.css").write_bytes(os.urandom(3000))
    run_tool(str(tree))
    assert not (tree / "app.css.gz").exists()


@pytest.mark.skipif(not HAVE_BROTLI, reason="the optional brotli extra is not installed")
def test_brotli_sidecars(tree: Path) -> None:
    import brotli

    assert run_tool(str(tree), "--brotli").returncode == 0
    sidecar = tree / "app.css.br"
    assert brotli.decompress(sidecar.read_bytes()) == (tree / "app.css").read_bytes()
    assert sidecar.stat().st_mtime_ns == (tree / "app.css").stat().st_mtime_ns


def test_not_a_directory(tmp_path: Path) -> None:
    result = run_tool(str(tmp_path / "missing"))
    assert result.returncode == 2 and "not a directory" in result.stderr
