"""Debian's headless Chromium against x15g's static files: every resource of a page comes back
with the right bytes when the browser asks anew (cache-busting queries), when it revalidates
what it cached (conditional requests answered 304), and for a precompressed sidecar, while the
browser's heads (too long to be kept by their bytes) are answered by the ready answers they
select."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import urllib.request
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tools import locust_ui_screenshot as ui

pytestmark = pytest.mark.timeout(120)
CHROMIUM = ui.find_chromium()

# Every resource fetched `ROUNDS` times per way of asking, from the page's own script.
ROUNDS = 4
CHECK = """
(async () => {
  const hex = (buf) => Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, "0")).join("");
  const out = [];
  for (const [mode, bust] of [["no-store", true], ["default", false], ["no-cache", false]]) {
    for (let round = 0; round < %(rounds)d; round++) {
      for (const name of %(names)s) {
        const url = "/" + name + (bust ? "?v=" + round + "-" + Math.random() : "");
        const response = await fetch(url, {cache: mode});
        const digest = hex(await crypto.subtle.digest("SHA-256", await response.arrayBuffer()));
        out.push([mode, name, response.status, digest, response.headers.get("content-encoding")]);
      }
    }
  }
  return out;
})()
"""


def make_site(root: Path) -> dict[str, str]:
    """A page and its resources (one with a .gz sidecar, one sent by sendfile); name -> sha256."""
    root.mkdir()
    files = {"app.js": b"console.log('x15g');\n" * 200, "style.css": b"body { color: #123; }\n" * 50,
             "big.bin": os.urandom(100 * 1024)}
    files.update({f"img{i}.bin": os.urandom(300 + 1500 * i) for i in range(8)})
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "app.js.gz").write_bytes(gzip.compress(files["app.js"], mtime=0))
    (root / "index.html").write_bytes(b"<!doctype html><title>x15g</title><p>resources</p>\n")
    os.chmod(root, 0o755)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def metric(server: ServerProcess, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/-/metrics", timeout=10).read()
    match = re.search(rb"^x15g_%s (\S+)$" % re.escape(name.encode()), body, re.M)
    assert match, body.decode()
    return float(match.group(1))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: " + ui.INSTALL_HINT)
def test_a_browser_gets_every_resource_right_new_revalidated_and_precompressed(tmp_path: Path) -> None:
    digests = make_site(tmp_path / "root")
    with ServerProcess(tmp_path / "root") as server:
        browser = ui.Chromium(CHROMIUM)
        try:
            browser.open(f"http://127.0.0.1:{server.port}/index.html")
            browser.wait_for("location.pathname === '/index.html' && document.readyState === 'complete'", 30,
                             "the page")
            results = browser.js(CHECK % {"rounds": ROUNDS, "names": json.dumps(sorted(digests))})
        finally:
            browser.close()
        assert len(results) == 3 * ROUNDS * len(digests)
        wrong = [(mode, name, status) for mode, name, status, digest, _ in results
                 if status != 200 or digest != digests[name]]
        assert not wrong, wrong
        encodings = {(name, encoding) for _, name, _, _, encoding in results if encoding}
        assert encodings == {("app.js", "gzip")}  # the sidecar, decoded by the browser
        assert metric(server, 'requests_total{method="GET",code="304"}') >= (ROUNDS - 1) * len(digests)
        assert metric(server, "ready_answers_total") >= ROUNDS * len(digests)
