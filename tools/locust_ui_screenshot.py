#!/usr/bin/env python3
"""Screenshot of the locust web UI running the SPECweb99-like suite against x15g (docs/locust-ui.png).

Starts x15g on a tiny generated file set and locust's web UI on 127.0.0.1, starts a run through
locust's HTTP API (POST /swarm, what the UI's start button does), waits, then lets headless
Chromium (Debian `chromium`) load the charts tab and save a PNG. Everything is stopped by PID.

    python -m tools.locust_ui_screenshot [--out docs/locust-ui.png] [--seconds 40] [--tab charts]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tools import loadtest_run as lr

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str:
    """Path of the Chromium binary, or exit with how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("chromium not found: install it with `apt-get update && apt-get install -y chromium`")


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until `url` answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("%s did not answer within %ss" % (url, timeout))


def swarm(ui: str, users: int, rate: float, host: str) -> None:
    """Start a run like the UI's start button does."""
    data = urllib.parse.urlencode({"user_count": users, "spawn_rate": rate, "host": host}).encode()
    reply = json.loads(urllib.request.urlopen(ui + "/swarm", data=data, timeout=30).read())
    if not reply.get("success"):
        raise RuntimeError("locust refused to start: %s" % reply)


def screenshot(chromium: str, url: str, out: Path, size: str) -> None:
    """Load `url` in a fresh headless Chromium profile and save a PNG of the window."""
    with tempfile.TemporaryDirectory(prefix="x15g-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, "--user-data-dir=" + profile, "--window-size=" + size,
               "--virtual-time-budget=8000", "--screenshot=" + str(out), url]
        subprocess.run(cmd, check=True, timeout=90, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    """Command-line entry; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(lr.REPO / "docs" / "locust-ui.png"))
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=40, help="run time before the screenshot")
    ap.add_argument("--tab", default="charts", help="UI tab to show (charts, stats, failures, ...)")
    ap.add_argument("--size", default="1400,1000")
    args = ap.parse_args()
    chromium = find_chromium()
    work = Path(tempfile.mkdtemp(prefix="x15g-ui-"))
    docroot = lr.make_fileset(work, args.users, 3)
    port, web_port = lr.free_port(), lr.free_port()
    server = lr.start_server(docroot, port, 1, work / "x15g.log")
    host = "http://127.0.0.1:%d" % port
    cmd = lr.locust_command(host, args.users, 3, 10, 120, 5, 10, "", False, [])
    cmd = [c for c in cmd if c != "--headless"] + ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    locust = subprocess.Popen(cmd, cwd=lr.REPO, stdout=subprocess.DEVNULL, stderr=open(work / "locust.log", "wb"))
    try:
        ui = "http://127.0.0.1:%d" % web_port
        wait_http(ui + "/")
        swarm(ui, args.users, 10, host)
        time.sleep(args.seconds)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(chromium, ui + "/?tab=" + args.tab, out, args.size)
        print("saved %s (%d bytes)" % (out, out.stat().st_size))
    finally:
        lr.stop(locust)
        lr.stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
