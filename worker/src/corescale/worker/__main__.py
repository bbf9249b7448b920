"""`python -m corescale.worker`: the same as the corescale-worker command."""

from corescale.worker.cli import main

raise SystemExit(main())
