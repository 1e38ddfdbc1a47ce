"""Create a small demo document root for `make run` (an index page, a text file, a 1 MiB file)."""

from __future__ import annotations

import os
import sys


def make_demo_root(path: str) -> None:
    os.makedirs(os.path.join(path, "docs"), exist_ok=True)
    with open(os.path.join(path, "index.html"), "w") as f:
        f.write(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>x15g</title></head>\n"
            "<body><h1>x15g is serving</h1>\n<p>This is the demo document root made by <code>make run</code>.</p>\n"
            "<ul><li><a href=\"/hello.txt\">hello.txt</a></li><li><a href=\"/docs/\">docs/</a></li>"
            "<li><a href=\"/big.bin\">big.bin</a> (1 MiB, sent with sendfile)</li></ul>\n</body></html>\n"
        )
    with open(os.path.join(path, "hello.txt"), "w") as f:
        f.write("hello from x15g\n")
    with open(os.path.join(path, "docs", "index.html"), "w") as f:
        f.write("<!doctype html>\n<title>docs</title>\n<p>A directory with its own index page.</p>\n")
    with open(os.path.join(path, "big.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4096)


if __name__ == "__main__":
    make_demo_root(sys.argv[1] if len(sys.argv) > 1 else "demo-root")
