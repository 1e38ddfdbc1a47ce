"""The summary as table rows (web UI tab, --csv file, --html section) and the step option."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.cli import parse_step
from loadtests.specweb_report import html_section, inject_html, rows, to_csv
from loadtests.specweb_summary import Tally, summarize
from loadtests.specweb_workload import STATIC

WINDOW = (100.0, 200.0)


def summary(errors=0):
    tally = Tally(window=WINDOW)
    meter = tally.add_user("0:0", 0.0)
    for i in range(100):
        t = WINDOW[0] + i
        error = "static body mismatch" if i < errors else None
        tally.record(meter, STATIC, t, t + 0.01, 50_000, 0.99, 2.0, error)
        if error:
            tally.example(error, "GET /file_set/dir00000/class1_4 -> 200, 4096 bytes, body starts b'<x>'")
    return summarize(tally, {"N": 1, "users_at_start": 1, "D": 3, "phase": "finished"}, [])


def test_rows_carry_verdict_counts_operations_and_error_examples():
    r = {row["what"]: row for row in rows(summary(errors=2))}
    assert r["Verdict"]["value"] == "INVALID" and "validation errors 2.00%" in r["Verdict"]["detail"]
    assert r["N (users)"]["detail"] == "1 at the start of the measurement interval"
    assert r["Conforming in the measurement interval"]["value"] == "1 of 1 (100.0%)"
    assert r["static"]["value"] == "1.0 ops/s" and "p99 2 ms" in r["static"]["detail"]
    assert r["Error: static body mismatch"]["value"] == "2"
    assert "class1_4 -> 200" in r["Error: static body mismatch"]["detail"]
    assert r["post.log check"]["value"] == "passed"


def test_csv_and_html_show_the_same_rows_escaped():
    s = summary(errors=1)
    csv_lines = to_csv(s).splitlines()
    assert csv_lines[0] == "What,Value,Detail" and len(csv_lines) == len(rows(s)) + 1
    section = html_section(s)
    assert "&lt;x&gt;" in section and "<x>" not in section
    page = inject_html("<html><body><div id=\"root\"></div></body></html>", s)
    assert page.index("specweb99") < page.index('id="root"')


def test_step_option():
    assert parse_step("50,50,30,300")["LOCUST_SPECWEB_STEP_MAX"] == "300"
    for bad in ("50,50,30", "0,1,1,1", "10,5,0,20", "a,1,1,1", "30,1,1,20"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_step(bad)


def test_report_control_and_cli_modules_do_not_import_locust():
    """Like tests/test_no_locust_in_pytest.py, for the modules this suite's tests import."""
    code = ("import sys, loadtests.specweb_report, loadtests.specweb_control, loadtests.cli;"
            "print('locust' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=str(Path(__file__).resolve().parents[2]))
    assert result.stdout.strip() == "False", result.stderr
