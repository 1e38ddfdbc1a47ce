#!/usr/bin/env python3
"""Drive locust's web UI in Debian's headless Chromium: start a SPECweb99-like run from the UI's
form, wait for the measurement phase, read the SPECweb99 tab and save a screenshot of it
(docs/locust-ui.png). tests/loadtests/test_specweb_browser.py runs the same steps.

Chromium is driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`: JSON
messages ending in NUL on file descriptors 3 and 4), so no driver, WebSocket library or Python
package is needed; install the browser with tools/install-browser.sh.

    python -m tools.locust_ui_screenshot [--out docs/locust-ui.png] [--users 50] [--locust-workers 2]
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from loadtests import cli as lr

REPO = Path(__file__).resolve().parent.parent

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-pipe"]
INSTALL_HINT = "run tools/install-browser.sh (apt-get install -y chromium)"


def find_chromium() -> str | None:
    """Path of the Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """A headless Chromium with a fresh, empty profile, driven over its DevTools pipe."""

    def __init__(self, binary: str, size: tuple[int, int] = (1400, 1100)) -> None:
        # Chromium's helper processes may still write to the profile as it is removed.
        self.profile = tempfile.TemporaryDirectory(prefix="x15g-chromium-", ignore_cleanup_errors=True)
        to_browser, self._out = os.pipe()  # we write commands, Chromium reads fd 3
        self._in, from_browser = os.pipe()  # Chromium writes fd 4, we read
        self._next_id = 0
        self._buffer = b""
        self.session = ""

        def wire_pipe() -> None:
            # copy both ends above 9 first, so neither is overwritten when it already sits on 3 or 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            for fd, target in zip(high, (3, 4)):
                os.dup2(fd, target)  # dup2 copies are inheritable

        cmd = [binary, *CHROMIUM_FLAGS, "--user-data-dir=" + self.profile.name,
               "--window-size=%d,%d" % size, "about:blank"]
        # os.pipe() descriptors are close-on-exec; their dup2 copies on 3 and 4 are inherited
        self.proc = subprocess.Popen(cmd, preexec_fn=wire_pipe, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0,
             browser: bool = False) -> dict[str, Any]:
        """One DevTools command (to the page's session unless `browser`); its result."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe (exit %s)" % self.proc.poll())
            self._buffer += chunk
        msg, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(msg)

    def open(self, url: str) -> None:
        """Open `url` in a new tab and attach to it."""
        target = self.send("Target.createTarget", {"url": url}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 browser=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def js(self, expression: str) -> Any:
        """Evaluate `expression` in the page; its value (JSON-able)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError("page script failed: %s" % result["exceptionDetails"].get("text"))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError("waited %.0f s for %s" % (timeout, what))

    def click(self, selector_js: str) -> None:
        """A real mouse click in the middle of the element `selector_js` evaluates to."""
        box = self.js("(() => { const r = (%s).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
                      % selector_js)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def type_into(self, selector: str, text: str) -> None:
        """Replace the text of the input `selector` by typing `text`."""
        self.js("(() => { const e = document.querySelector(%s); e.focus(); e.select(); })()" % json.dumps(selector))
        self.send("Input.insertText", {"text": text})

    def screenshot(self, out: Path) -> None:
        """Save the page as a PNG."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Ask Chromium to quit (its helper processes with it), stop it by its PID if it does not,
        and remove its profile."""
        try:
            self.send("Browser.close", browser=True, timeout=5)
        except Exception:  # gone already, or not answering: stopped by its PID below
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        lr.stop(self.proc, timeout=5)
        for fd in (self._in, self._out):
            try:
                os.close(fd)
            except OSError:
                pass
        self.profile.cleanup()


TAB_ROWS_JS = """(() => Object.fromEntries([...document.querySelectorAll('tbody tr')]
    .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))
    .filter(cells => cells.length === 3).map(([what, value, detail]) => [what, [value, detail]])))()"""
TAB_BUTTON_JS = "[...document.querySelectorAll('[role=tab]')].find(t => t.textContent.trim() === 'SPECweb99')"


def run_from_ui(browser: Chromium, ui: str, users: int, spawn_rate: float, timeout: float = 90.0) -> dict[str, list[str]]:
    """Fill in and submit the UI's start form, open the SPECweb99 tab and wait until the
    measurement interval has measured conforming users; the tab's rows {what: [value, detail]}."""
    browser.open(ui + "/")
    browser.wait_for("!!document.querySelector('input[name=userCount]')", 30, "the start form")
    browser.type_into("input[name=userCount]", str(users))
    browser.type_into("input[name=spawnRate]", str(spawn_rate))
    browser.click("document.querySelector('form button[type=submit]')")
    browser.wait_for("!!(%s)" % TAB_BUTTON_JS, 30, "the SPECweb99 tab")
    browser.click(TAB_BUTTON_JS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = browser.js(TAB_ROWS_JS) or {}
        phase = rows.get("Phase", [""])[0]
        conforming = rows.get("Conforming in the measurement interval", ["0"])[0]
        if phase.startswith("measurement") and not conforming.startswith("0 "):
            time.sleep(2.5)  # one more poll of the UI (every 2 s), so the figures have settled
            return browser.js(TAB_ROWS_JS)
        time.sleep(0.5)
    raise TimeoutError("the SPECweb99 tab did not reach the measurement phase: %s" % rows)


def start_suite(work: Path, users: int, locust_workers: int, web_port: int, warmup: float,
                measure: float) -> tuple[list[Any], str]:
    """x15g on a small file set and the locust suite with its web UI; ([processes], UI URL)."""
    docroot = lr.make_fileset(work, users, 3)
    port = lr.free_port()
    server = lr.start_server(docroot, port, 1, work / "x15g.log")
    cmd = lr.locust_command("http://127.0.0.1:%d" % port, users, 3, warmup, measure, 2, 10, "", True, [], web_port)
    log = open(work / "locust.log", "wb")
    procs: list[Any] = [server]
    if locust_workers:
        mport = lr.free_port()
        cmd += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(mport),
                "--expect-workers", str(locust_workers)]
        procs += [subprocess.Popen(lr.worker_command("127.0.0.1", mport), stdout=log, stderr=log)
                  for _ in range(locust_workers)]
    procs.append(subprocess.Popen(cmd, stdout=log, stderr=log))
    ui = "http://127.0.0.1:%d" % web_port
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(ui + "/", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                stop_all(procs)
                raise RuntimeError("locust's web UI did not come up (see %s)" % (work / "locust.log"))
            time.sleep(0.3)
    return procs, ui


def stop_all(procs: list[Any]) -> None:
    """Stop what start_suite started, newest first, each by its PID."""
    for p in reversed(procs):
        lr.stop(p)


def main() -> int:
    """Command-line entry; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "locust-ui.png"))
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--locust-workers", type=int, default=2)
    ap.add_argument("--measure-seconds", type=float, default=8, help="how far into the measurement to shoot")
    ap.add_argument("--size", default="1400,1150")
    args = ap.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("chromium not found: " + INSTALL_HINT)
    work = Path(tempfile.mkdtemp(prefix="x15g-ui-"))
    procs, ui = start_suite(work, args.users, args.locust_workers, lr.free_port(), 3, 120)
    w, h = (int(x) for x in args.size.split(","))
    browser = Chromium(binary, (w, h))
    try:
        rows = run_from_ui(browser, ui, args.users, args.users)
        end = time.monotonic() + args.measure_seconds
        while time.monotonic() < end:
            time.sleep(1)
        rows = browser.js(TAB_ROWS_JS)
        browser.screenshot(Path(args.out))
        print("saved %s: %s; %s" % (args.out, rows["Conforming in the measurement interval"][0], rows["Verdict"]))
    finally:
        browser.close()
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
