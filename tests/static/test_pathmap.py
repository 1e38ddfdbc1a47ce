"""URL path -> file path: traversal in every encoding, NUL, slashes, UTF-8, dotfiles, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from x15g.config import default_settings
from x15g.errors import HTTPError
from x15g.static.pathmap import PathMap, percent_decode, split_path


@pytest.mark.parametrize(
    "raw, segments, trailing",
    [
        (b"/", (), True),
        (b"/a/b.txt", ("a", "b.txt"), False),
        (b"/a/b/", ("a", "b"), True),
        (b"//a///b", ("a", "b"), False),
        (b"/a/./b", ("a", "b"), False),
        (b"/a/../b", ("b",), False),
        (b"/a/b/..", ("a",), True),
        (b"/a/%2e%2e/b", ("b",), False),  # decoded dots normalise the same way, once
        (b"/caf%C3%A9", ("café",), False),
        (b"/a%20b", ("a b",), False),
        (b"/%252e%252e/x", ("%2e%2e", "x"), False),  # decoded exactly once
        (b"/a/%2E/b", ("a", "b"), False),
    ],
)
def test_split_path_accepts(raw: bytes, segments: tuple[str, ...], trailing: bool) -> None:
    assert split_path(raw) == (segments, trailing)


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"/..", 400),
        (b"/../etc/passwd", 400),
        (b"/a/../../etc/passwd", 400),
        (b"/%2e%2e/etc/passwd", 400),
        (b"/%2E%2E/%2E%2E/etc/passwd", 400),
        (b"/.%2e/x", 400),
        (b"/a%2f..%2f..%2fetc", 400),  # encoded slash
        (b"/a%2Fb", 400),
        (b"/a%5c..%5cb", 400),  # encoded backslash
        (b"/a\\..\\b", 400),  # literal backslash
        (b"/a%00.txt", 400),  # NUL
        (b"/a\x00b", 400),
        (b"/%c0%ae%c0%ae/etc", 400),  # overlong UTF-8 for '.'
        (b"/%c0%af", 400),  # overlong '/'
        (b"/%e0%80%ae", 400),  # 3-byte overlong
        (b"/%ed%a0%80", 400),  # UTF-16 surrogate
        (b"/%ff", 400),  # invalid UTF-8
        (b"/%zz", 400),  # bad escape
        (b"/%4", 400),
        (b"/%", 400),
        (b"a/b", 400),  # not absolute
        (b"/.git/config", 404),  # dotfiles hidden
        (b"/a/.env", 404),
        (b"/%2egit/config", 404),
        (b"/.well-known/x", 404),
    ],
)
def test_split_path_refuses(raw: bytes, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        split_path(raw)
    assert info.value.status == status


def test_dotfiles_allowed_when_enabled() -> None:
    assert split_path(b"/.well-known/x", dotfiles=True) == ((".well-known", "x"), False)


def test_percent_decode_once() -> None:
    assert percent_decode(b"/a%2541") == b"/a%41"


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "f.txt").write_text("in")
    (root / ".hidden").write_text("h")
    (outside / "secret.txt").write_text("out")
    os.symlink(root / "sub" / "f.txt", root / "link_in")
    os.symlink(outside / "secret.txt", root / "link_out")
    os.symlink(outside, root / "dir_out")
    os.symlink("sub", root / "dir_in")
    os.symlink(".hidden", root / "link_hidden")
    return root, outside


def _map(root: Path, **options: object) -> PathMap:
    return PathMap(default_settings(root=str(root), **options))


@pytest.mark.parametrize(
    "segments, follow, ok",
    [
        (("sub", "f.txt"), False, True),
        (("missing.txt",), False, True),  # resolves; the open answers 404
        (("link_in",), False, False),
        (("dir_in", "f.txt"), False, False),
        (("link_out",), False, False),
        (("dir_out", "secret.txt"), False, False),
        (("link_in",), True, True),
        (("dir_in", "f.txt"), True, True),
        (("link_out",), True, False),  # leaves the root
        (("dir_out", "secret.txt"), True, False),
        (("link_hidden",), True, False),  # a link to a dotfile stays hidden
    ],
)
def test_resolve_symlinks(tree: tuple[Path, Path], segments: tuple[str, ...], follow: bool, ok: bool) -> None:
    root, _ = tree
    paths = _map(root, follow_symlinks=follow)
    if ok:
        real = paths.resolve(segments)
        assert real.startswith(os.path.realpath(root))
    else:
        with pytest.raises(HTTPError) as info:
            paths.resolve(segments)
        assert info.value.status == 404


def test_root_given_through_a_symlink(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = tree
    alias = tmp_path / "alias"
    os.symlink(root, alias)
    paths = _map(alias)
    assert paths.resolve(("sub", "f.txt")) == os.path.join(os.path.realpath(root), "sub", "f.txt")


def test_url_of_cannot_make_protocol_relative() -> None:
    paths = PathMap(default_settings(root="/"))
    assert paths.url_of(("evil.com", "x y"), True) == "/evil.com/x%20y/"
