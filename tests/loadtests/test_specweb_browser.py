"""The SPECweb99 tab in a real browser: x15g, a locust master with 2 workers and its web UI, and
Debian's headless Chromium driven over the DevTools pipe (tools/locust_ui_screenshot.py). The run
is started from the UI's form; the tab must show the measurement phase with every user of both
workers counted and conforming, and the UI's report and CSV download must carry the summary."""

import urllib.request

import pytest

from tools import locust_ui_screenshot as ui

pytestmark = pytest.mark.timeout(150)
CHROMIUM = ui.find_chromium()
USERS = 10


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: " + ui.INSTALL_HINT)
def test_run_started_from_the_form_shows_the_specweb_tab(tmp_path):
    procs, url = ui.start_suite(tmp_path, USERS, 2, ui.lr.free_port(), warmup=1, measure=120)
    browser = None
    try:
        browser = ui.Chromium(CHROMIUM)
        rows = ui.run_from_ui(browser, url, USERS, USERS)
        shot = tmp_path / "tab.png"
        browser.screenshot(shot)
        report = urllib.request.urlopen(url + "/stats/report", timeout=30).read().decode()
        summary_csv = urllib.request.urlopen(url + "/specweb/csv", timeout=30).read().decode()
    finally:
        try:
            if browser is not None:
                browser.close()
        finally:
            ui.stop_all(procs)  # also when closing the browser failed: no server or locust left behind
    # SIGTERM mid-run: the master collects the workers' final reports and exits by itself
    assert procs[-1].returncode in (0, 1), "the locust master had to be killed: %s" % procs[-1].returncode
    assert rows["Phase"][0].startswith("measurement"), rows
    assert rows["N (users)"] == ["%d running of %d requested" % (USERS, USERS),
                                 "%d at the start of the measurement interval" % USERS], rows
    assert rows["Conforming in the measurement interval"][0] == "%d of %d (100.0%%)" % (USERS, USERS), rows
    assert rows["Verdict"][0] == "so far VALID", rows
    assert rows["Validation errors"][0].startswith("0 of "), rows
    assert rows["Run"][1].split(", ")[1] == "2 locust worker(s)", rows
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert '<section id="specweb99"' in report and "Conforming in the measurement interval" in report
    assert summary_csv.startswith("What,Value,Detail\r\nVerdict,")
