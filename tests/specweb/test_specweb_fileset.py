"""The file set (specweb99-like.md §2): sizes, names, every byte, generate + verify, the CLI."""

from __future__ import annotations

import hashlib
import os

import pytest

from x15g.specweb import fileset, fileset_cli

TAG = b'<!WEB99CAD><IMG SRC="/file_set/dirNNNNN/classX_Y"><!/WEB99CAD>'


def rebuild(d: int, c: int, f: int, seed: int = 1999) -> bytes:
    """An independent, byte-at-a-time reading of §2.4 (slow on purpose: no shared code)."""
    name = "file_set/dir%05d/class%d_%d" % (d, c, f)
    size = ([1024, 10240, 102400, 1024000][c] * (f + 1)) // 10
    hdr = ("%9d %s\n" % (size, name)).encode()
    blen = size - len(hdr)
    rand = hashlib.shake_256(("%d:%s" % (seed, name)).encode()).digest(blen)
    body = bytearray()
    m = 0
    for i in range(blen):
        if i % 4096 == 0:
            body.append(ord(name[m % len(name)]))
            m += 1
        elif i % 64 == 63:
            body.append(10)
        else:
            body.append(33 + (rand[i] % 92))
    ntags = {1: 1, 2: 2}.get(c, 0)
    markers = (blen + 4095) // 4096
    for t in range(ntags):
        i = 4096 * (t * markers // ntags)
        body[i + 1:i + 64] = TAG + b"\n"
    return hdr + bytes(body)


@pytest.mark.parametrize("conns, dirs", [(10, 31), (100, 90), (1000, 680), (3222, 2137), (1, 25)])
def test_directory_count(conns: int, dirs: int) -> None:
    assert fileset.directory_count(conns) == dirs


def test_sizes() -> None:
    assert [fileset.file_size(0, f) for f in range(9)] == [102, 204, 307, 409, 512, 614, 716, 819, 921]
    assert [fileset.file_size(1, f) for f in range(9)] == [1024 * (f + 1) for f in range(9)]
    assert fileset.file_size(3, 8) == 921600
    assert sum(fileset.file_size(c, f) for c in range(4) for f in range(9)) == 5_119_484


@pytest.mark.parametrize("d, c, f", [(0, 0, 0), (0, 0, 8), (0, 1, 0), (3, 1, 8), (12, 2, 1), (0, 2, 8), (7, 3, 0), (99999, 0, 5)])
def test_file_bytes_match_independent_rebuild(d: int, c: int, f: int) -> None:
    assert fileset.file_bytes(d, c, f) == rebuild(d, c, f)


def test_other_seed_differs() -> None:
    assert fileset.file_bytes(0, 1, 0, seed=7) == rebuild(0, 1, 0, seed=7) != fileset.file_bytes(0, 1, 0)


@pytest.mark.parametrize("d, c, f, tags", [(0, 0, 0, 0), (5, 1, 0, 1), (5, 1, 8, 1), (2, 2, 0, 2), (2, 2, 8, 2), (1, 3, 2, 0)])
def test_header_markers_and_tags(d: int, c: int, f: int, tags: int) -> None:
    data = fileset.file_bytes(d, c, f)
    name = "file_set/dir%05d/class%d_%d" % (d, c, f)
    size = fileset.file_size(c, f)
    assert len(data) == size
    assert data[:37] == ("%9d %s\n" % (size, name)).encode()
    body = data[37:]
    for m, i in enumerate(range(0, len(body), 4096)):
        assert body[i] == ord(name[m % len(name)])
    assert data.count(TAG) == tags == len(fileset.tag_offsets(data))
    for off in fileset.tag_offsets(data):
        assert data[off:off + 17] == b"dirNNNNN/classX_Y" and data[off - 34 + 3:off + 3] == fileset.TAG_PREFIX
        assert data[off - 32] == body[0] if off < 4096 else True
    # every 64-byte body line ends in "\n", tag lines included
    assert all(body[i] == 10 for i in range(63, len(body), 64))


def test_first_tag_follows_first_marker() -> None:
    data = fileset.file_bytes(0, 1, 0)
    assert data[37:37 + 64] == b"f" + TAG + b"\n"  # marker 0 is name[0] == "f"
    data = fileset.file_bytes(0, 2, 8)  # B = 92123, 23 markers: tags after markers 0 and 11
    assert data[37 + 11 * 4096 + 1:37 + 11 * 4096 + 64] == TAG + b"\n"


def test_generate_and_verify(tmp_path) -> None:
    root = str(tmp_path / "docroot")
    seen = []
    fileset.generate(root, 2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert sorted(os.listdir(os.path.join(root, "file_set"))) == ["dir00000", "dir00001"]
    assert len(os.listdir(os.path.join(root, "file_set", "dir00001"))) == 36
    with open(os.path.join(root, "file_set/dir00001/class2_3"), "rb") as fh:
        assert fh.read() == rebuild(1, 2, 3)
    assert fileset.verify(root, 2) == []
    # one byte changed deep inside a big file is caught
    path = os.path.join(root, "file_set/dir00001/class3_4")
    with open(path, "r+b") as fh:
        fh.seek(300_000)
        byte = fh.read(1)
        fh.seek(300_000)
        fh.write(bytes([byte[0] ^ 1]))
    os.remove(os.path.join(root, "file_set/dir00000/class0_0"))
    assert fileset.verify(root, 2) == ["file_set/dir00000/class0_0", "file_set/dir00001/class3_4"]
    assert fileset.verify(root, 2, seed=1) != []


def test_cli_generate_verify_and_state(tmp_path, capsys) -> None:
    root = str(tmp_path / "docroot")
    assert fileset_cli.main(["--conns", "10", "--dirs", "2", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "D=2 " in out and "time=" in out
    state = tmp_path / "specweb_state"
    assert (state / "post.log").read_bytes() == b"         0\n"
    assert len((state / "User.Personality").read_bytes()) == 10 * 15
    assert len((state / "Custom.Ads").read_bytes()) == 360 * 39
    assert fileset_cli.main(["--conns", "10", "--dirs", "2", "--root", root, "--verify"]) == 0
    with open(os.path.join(root, "file_set/dir00001/class1_1"), "r+b") as fh:
        fh.seek(1500)
        fh.write(b"\x00")
    assert fileset_cli.main(["--conns", "10", "--dirs", "2", "--root", root, "--verify", "--jobs", "1"]) == 1
    assert "BAD file_set/dir00001/class1_1" in capsys.readouterr().out
