"""`python -m x15g` is the same as the `x15g` command."""

from x15g.cli import main

raise SystemExit(main())
