#!/usr/bin/env python3
"""`x15g-loadtest` from a checkout without installing it (see loadtests/cli.py for the options).

    python tools/loadtest_run.py --users 20 --dirs 3 --warmup 5 --measure 20
"""

from __future__ import annotations

import sys

from loadtests.cli import main  # installed with the project (editable in a checkout's .venv)

if __name__ == "__main__":
    sys.exit(main())
