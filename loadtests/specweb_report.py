"""The SPECweb99-like summary as rows of a table: the web UI's SPECweb99 tab, the --csv file and
the section added to the --html report show the same rows. Pure (no locust, no Flask).
"""

from __future__ import annotations

import csv
import html
import io
from typing import Any

from loadtests.specweb_summary import MAX_ERROR_PCT, verdict
from loadtests.specweb_workload import CONFORMING_BPS, OPERATIONS

TAB_KEY = "specweb99"
COLUMNS = (("what", "What"), ("value", "Value"), ("detail", "Detail"))


def _row(what: str, value: Any, detail: str = "") -> dict[str, str]:
    return {"what": what, "value": str(value), "detail": detail}


def rows(s: dict[str, Any]) -> list[dict[str, str]]:
    """The summary `s` (live or final) as [{what, value, detail}] in reading order."""
    verdict_text = verdict(s)
    head, _, detail = verdict_text.partition(": ")
    running = s.get("N_running")
    out = [
        _row("Verdict", head, detail),
        _row("Phase", s.get("phase", "finished" if s.get("final", True) else "?"),
             "warm-up %ss, measurement %ss, ramp-down %ss (%s)" % (
                 s.get("warmup"), s.get("measure"), s.get("rampdown"), s.get("timing", "?"))),
        _row("N (users)", "%s running of %s requested" % (s.get("users_now", "?"), s.get("N_requested")),
             "%s at the start of the measurement interval" % ("not started yet" if running is None else running)),
        _row("Conforming now", "%s of %s" % (s.get("conforming_now", "?"), s.get("users_now", "?")),
             "users at >= %d bit/s over about the last 10 s" % CONFORMING_BPS),
        _row("Conforming in the measurement interval",
             "%d of %d (%.1f%%)" % (s["conforming"], s["users"], s["conforming_pct"]),
             "user bit/s min %s, median %s, max %s over %.0f s measured" % (
                 s["rates_bps"]["min"], s["rates_bps"]["median"], s["rates_bps"]["max"], s.get("measured_s", 0))),
    ]
    for op in OPERATIONS:
        lat = s["latency_ms"][op]
        out.append(_row("%s" % op, "%.1f ops/s" % s["ops_per_s"][op],
                        "mean %.1f ms, p99 %.0f ms, %d measured" % (lat["mean"], lat["p99"], s["ops"][op])))
    out.append(_row("Validation errors", "%d of %d requests (%.3f%%)" % (s["error_count"], s["requests"], s["error_pct"]),
                    "a valid run has at most %.0f%%" % MAX_ERROR_PCT))
    examples = s.get("error_examples", {})
    for check, n in s["errors"].items():
        out.append(_row("Error: %s" % check, n, "latest: %s" % examples.get(check, "-")))
    out.append(_row("post.log check", _post_log_state(s),
                    "%s POSTs acknowledged, %s records in post.log" % (s.get("post_records", "-"), s.get("post_log_count", "-"))))
    if s.get("client_cpu_us_per_op") is not None:
        out.append(_row("Load generator CPU", "%.0f us per operation" % s["client_cpu_us_per_op"],
                        "all locust processes, in the measurement interval"))
    out.append(_row("Run", "N=%s D=%s" % (s.get("N"), s.get("D")),
                    "host %s, %s locust worker(s), run seed %s" % (s.get("host"), s.get("workers"), s.get("run_seed"))))
    return out


def _post_log_state(s: dict[str, Any]) -> str:
    if s.get("static_only"):
        return "not run (static only)"
    if not s.get("final", True):
        return "pending (after the ramp-down)"
    return "passed" if s["post_log_ok"] else "FAILED"


def to_csv(s: dict[str, Any]) -> str:
    """The rows as CSV with a header line (the --csv file and the tab's download)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for r in rows(s):
        writer.writerow([r[key] for key, _ in COLUMNS])
    return out.getvalue()


def html_section(s: dict[str, Any]) -> str:
    """The rows as a self-contained HTML table (for locust's --html report)."""
    cells = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(r[key]) for key, _ in COLUMNS)
                    for r in rows(s))
    head = "".join("<th>%s</th>" % title for _, title in COLUMNS)
    return ('<section id="specweb99" style="font-family:sans-serif;margin:16px">'
            "<h2>SPECweb99-like result</h2>"
            '<table border="1" cellpadding="4" style="border-collapse:collapse">'
            "<thead><tr>%s</tr></thead><tbody>%s</tbody></table></section>" % (head, cells))


def inject_html(report: str, s: dict[str, Any]) -> str:
    """Locust's HTML report with the SPECweb99-like section at the top of its body."""
    at = report.find("<body>")
    if at < 0:
        return report + html_section(s)
    at += len("<body>")
    return report[:at] + html_section(s) + report[at:]
