"""The SPECweb99 tab of locust's web UI, through locust's own extension points (no fork of its front end).

- `template_args["extended_tabs"]` / `["extended_tables"]` declare the tab and its columns; the
  React UI shows a table for them and fills it from the `extended_stats` entry with the same key
  in the `/stats/requests` JSON it polls every 2 s while a run is spawning or running, which an
  `after_request` hook adds here.
- `template_args["extended_csv_files"]` adds "Download SPECweb99-like summary CSV" to the
  Download Data tab (route `/specweb/csv`); `/specweb/summary` serves the summary as JSON.
- `/stats/report` (the UI's "Download Report") gets the same table at the top of its body.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from flask import Response, request

from loadtests.specweb_report import COLUMNS, TAB_KEY, inject_html, rows, to_csv

SummarySource = Callable[[], "dict[str, Any] | None"]


def install(web_ui: Any, current_summary: SummarySource) -> None:
    """Add the SPECweb99 tab, its data and its downloads to a locust `WebUI`."""
    web_ui.template_args.update(
        extended_tabs=[{"title": "SPECweb99", "key": TAB_KEY}],
        extended_tables=[{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}],
        extended_csv_files=[{"href": "./specweb/csv", "title": "Download SPECweb99-like summary CSV"}],
    )
    app = web_ui.app

    @app.route("/specweb/summary")
    def specweb_summary() -> Any:
        return current_summary() or {"state": "no run yet"}

    @app.route("/specweb/csv")
    def specweb_csv() -> Response:
        s = current_summary()
        response = Response(to_csv(s) if s else "What,Value,Detail\n", mimetype="text/csv")
        response.headers["Content-Disposition"] = "attachment;filename=specweb99_summary.csv"
        return response

    @app.after_request
    def add_specweb(response: Response) -> Response:
        path = request.path.rstrip("/")
        if path.endswith("/stats/requests") and response.is_json:
            s = current_summary()
            data = {**response.get_json(), "extended_stats": [{"key": TAB_KEY, "data": rows(s) if s else []}]}
            response.set_data(json.dumps(data))
        elif path.endswith("/stats/report") and response.mimetype == "text/html":
            s = current_summary()
            if s:
                response.set_data(inject_html(response.get_data(as_text=True), s))
        return response
