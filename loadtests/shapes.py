"""Load shapes for the SPECweb99-like suite.

`StepShape` raises the number of simulated connections in steps (start, start+step, ... up to
max_users, each held `step_time` seconds), for watching where x15g stops keeping up in the web UI:

    locust -f loadtests/specweb99.py,loadtests/shapes.py --config loadtests/locust.conf ...

The steps come from LOCUST_SPECWEB_STEP_START / _STEP / _STEP_TIME / _STEP_MAX. The SPECweb99-like
score itself needs one run per N (§4: "rerun with increasing N"), which tools/specweb_capacity.py
does; the Reset of such a run uses `max_users` as N.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from loadtests.specweb_workload import step_table


class StepShape(LoadTestShape):
    """Staircase of simulated connections; holds the top step until the run stops itself."""

    start = int(os.environ.get("LOCUST_SPECWEB_STEP_START", "10"))
    step = int(os.environ.get("LOCUST_SPECWEB_STEP", "10"))
    step_time = float(os.environ.get("LOCUST_SPECWEB_STEP_TIME", "30"))
    max_users = int(os.environ.get("LOCUST_SPECWEB_STEP_MAX", "100"))

    def ramp_seconds(self) -> float:
        """When the top step (max_users) begins, in seconds from the start."""
        stages = step_table(self.start, self.step, self.step_time, self.max_users)
        return stages[-2][0] if len(stages) > 1 else 0.0

    def tick(self) -> tuple[int, float] | None:
        """(users, spawn rate) for the current stage; the last stage is held."""
        now = self.get_run_time()
        stages = step_table(self.start, self.step, self.step_time, self.max_users)
        for end, users in stages:
            if now < end:
                return users, max(1.0, float(self.step))
        return stages[-1][1], max(1.0, float(self.step))
