"""The SPECweb99-like file set (specweb99-like.md §2): sizes, names and exact contents.

Every byte of every file is a pure function of (seed, directory, class, number), so the generator,
the server and the load client can each rebuild any file. Contents are built with bytes operations
only (shake_256 + translate for the filler, extended-slice assignment for the newlines and markers)
so a 900 KB class-3 file costs a few milliseconds, not a Python loop per byte.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

BASE = (1024, 10240, 102400, 1024000)
CLASSES = 4
FILES_PER_CLASS = 9
FILES_PER_DIR = CLASSES * FILES_PER_CLASS
DIR_BYTES = 5_119_484  # §2.3: bytes in one directory

TAG_PREFIX = b'<!WEB99CAD><IMG SRC="/file_set/dir'
TAG = b'<!WEB99CAD><IMG SRC="/file_set/dirNNNNN/classX_Y"><!/WEB99CAD>'
TAG_FIELD_OFFSET = 31  # the 17-byte placeholder "dirNNNNN/classX_Y" starts here in TAG
TAG_FIELD_LEN = 17
TAGS_PER_CLASS = (0, 1, 2, 0)
_TAG_LINE = TAG + b"\n"  # 63 bytes: with its marker byte, exactly one 64-byte line
_MARKER_STRIDE = 4096
_LINE = 64

# §2.4: maps every byte value into printable ASCII 33..124.
_FILLER_TABLE = bytes(33 + (x % 92) for x in range(256))

assert len(TAG) == 62 and len(TAG_PREFIX) == 34 and TAG[31:48] == b"dirNNNNN/classX_Y"


def directory_count(conns: int) -> int:
    """D for N simultaneous connections (§2.1): float maths, truncated toward zero."""
    return int(25 + ((400000.0 / 122000.0) * conns) / 5.0)


def file_size(cls: int, num: int) -> int:
    """Size in bytes of classC_F (§2.3)."""
    return (BASE[cls] * (num + 1)) // 10


def file_name(d: int, cls: int, num: int) -> str:
    """Path relative to DOCROOT without a leading slash, e.g. `file_set/dir00000/class1_0`."""
    return "file_set/dir%05d/class%d_%d" % (d, cls, num)


def tag_marker_ordinals(body_len: int, tags: int) -> list[int]:
    """Ordinals of the markers that tags follow (§2.4 step 3, the [approx] rule)."""
    markers = (body_len + _MARKER_STRIDE - 1) // _MARKER_STRIDE
    return [t * markers // tags for t in range(tags)]


def file_bytes(d: int, cls: int, num: int, seed: int = 1999) -> bytes:
    """The exact content of one file (§2.4): header, filler, newlines, markers and ad tags."""
    name = file_name(d, cls, num)
    size = file_size(cls, num)
    hdr = b"%9d %s\n" % (size, name.encode())
    blen = size - len(hdr)
    raw = hashlib.shake_256(("%d:%s" % (seed, name)).encode()).digest(blen)
    body = bytearray(raw.translate(_FILLER_TABLE))
    # Every 64th byte is a newline; marker bytes (offsets 0, 4096, ...) never sit on one.
    body[_LINE - 1 :: _LINE] = b"\n" * len(range(_LINE - 1, blen, _LINE))
    nmarkers = len(range(0, blen, _MARKER_STRIDE))
    bname = name.encode()
    reps = nmarkers // len(bname) + 1
    body[0::_MARKER_STRIDE] = (bname * reps)[:nmarkers]
    tags = TAGS_PER_CLASS[cls]
    if tags:
        for ordinal in tag_marker_ordinals(blen, tags):
            i = ordinal * _MARKER_STRIDE
            body[i + 1 : i + 1 + len(_TAG_LINE)] = _TAG_LINE
        del body[blen:]  # only matters if a body were too small to hold a tag line
    return hdr + bytes(body)


def tag_offsets(data: bytes) -> list[int]:
    """Offsets of the 17-byte ad field (just after "/file_set/" in each tag) in file `data`."""
    out = []
    pos = data.find(TAG_PREFIX)
    while pos >= 0:
        out.append(pos + len(TAG_PREFIX) - 3)  # the field starts at "dir"
        pos = data.find(TAG_PREFIX, pos + len(TAG_PREFIX))
    return out


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def generate_dir(root: str, d: int, seed: int = 1999) -> None:
    """Write the 36 files of directory d under `root` (the DOCROOT)."""
    path = os.path.join(root, "file_set", "dir%05d" % d)
    os.makedirs(path, exist_ok=True)
    for cls in range(CLASSES):
        for num in range(FILES_PER_CLASS):
            _write_file(os.path.join(path, "class%d_%d" % (cls, num)), file_bytes(d, cls, num, seed))


def generate(root: str, dirs: int, seed: int = 1999, progress: Callable[[int, int], None] | None = None) -> None:
    """Write directories 0..dirs-1 of the file set under DOCROOT `root`.

    `progress(done, total)` is called after each directory.
    """
    for d in range(dirs):
        generate_dir(root, d, seed)
        if progress is not None:
            progress(d + 1, dirs)


def verify_dir(root: str, d: int, seed: int = 1999) -> list[str]:
    """Names (relative to DOCROOT) of the files of directory d whose bytes differ or are missing."""
    bad = []
    for cls in range(CLASSES):
        for num in range(FILES_PER_CLASS):
            name = file_name(d, cls, num)
            try:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read(file_size(cls, num) + 1)
            except OSError:
                bad.append(name)
                continue
            if data != file_bytes(d, cls, num, seed):
                bad.append(name)
    return bad


def verify(root: str, dirs: int, seed: int = 1999, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Re-read every file of directories 0..dirs-1 and compare every byte; returns bad names."""
    bad: list[str] = []
    for d in range(dirs):
        bad += verify_dir(root, d, seed)
        if progress is not None:
            progress(d + 1, dirs)
    return bad
