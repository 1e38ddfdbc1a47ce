"""Write precompressed sidecars for a tree: `NAME.gz` (and `NAME.br` with --brotli) beside each
compressible file, for x15g's `--precompressed` (nginx's gzip_static, h2o's file.send-compressed).

    x15g-precompress DIR [--brotli] [--min-size BYTES] [--force]

A sidecar is written only when it is smaller than the original, gets the original's mtime (so the
variant's Last-Modified matches) and is skipped when it is already newer than the original.
gzip comes from the standard library (level 9, no file name or time in the header, so the output is
reproducible); brotli needs the optional extra (`pip install '.[brotli]'` in the checkout).
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from pathlib import Path
from typing import Callable

COMPRESSIBLE = frozenset((
    ".html", ".htm", ".css", ".js", ".mjs", ".json", ".map", ".svg", ".txt", ".xml", ".csv", ".md",
    ".wasm", ".ico", ".ttf", ".otf", ".eot", ".webmanifest", ".rss", ".atom", ".yaml", ".yml",
))
SIDECAR_SUFFIXES = (".gz", ".br")


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def brotli_compressor() -> Callable[[bytes], bytes] | None:
    """brotli.compress at the highest quality, or None when the module is not installed."""
    try:
        import brotli
    except ImportError:
        return None
    return lambda data: brotli.compress(data, quality=11)


def candidates(root: Path, min_size: int) -> list[Path]:
    """Regular files with a compressible extension, at least `min_size` bytes, not sidecars."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.suffix.lower() not in COMPRESSIBLE or path.is_symlink() or not path.is_file():
                continue
            if path.stat().st_size >= min_size:
                found.append(path)
    return sorted(found)


def write_sidecar(path: Path, suffix: str, compress: Callable[[bytes], bytes], force: bool) -> str:
    """'written', 'fresh' (up to date) or 'larger' (not worth it; any old sidecar is removed)."""
    sidecar = path.with_name(path.name + suffix)
    st = path.stat()
    if not force and sidecar.exists() and sidecar.stat().st_mtime_ns == st.st_mtime_ns:
        return "fresh"
    data = compress(path.read_bytes())
    if len(data) >= st.st_size:
        sidecar.unlink(missing_ok=True)  # a stale bigger sidecar must not be served
        return "larger"
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, st.st_mode & 0o777)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, sidecar)
    return "written"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="x15g-precompress", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="directory tree to precompress")
    parser.add_argument("--brotli", action="store_true", help="also write .br (needs the brotli module)")
    parser.add_argument("--min-size", type=int, default=256, help="skip files smaller than this (default 256)")
    parser.add_argument("--force", action="store_true", help="rewrite sidecars even when up to date")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a directory")
    coders: list[tuple[str, Callable[[bytes], bytes]]] = [(".gz", gzip_bytes)]
    if args.brotli:
        br = brotli_compressor()
        if br is None:
            print("precompress: the brotli module is not installed (the brotli extra: pip install '.[brotli]'"
                  " in the checkout); writing .gz only", file=sys.stderr)
        else:
            coders.append((".br", br))
    totals: dict[str, int] = {}
    for path in candidates(args.root, args.min_size):
        for suffix, compress in coders:
            outcome = write_sidecar(path, suffix, compress, args.force)
            totals[outcome] = totals.get(outcome, 0) + 1
    print(", ".join(f"{count} {outcome}" for outcome, count in sorted(totals.items())) or "nothing to do")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
