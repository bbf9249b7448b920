"""``python -m corescale.operator``: the same as the ``corescale-operator`` command."""

import sys

from corescale.operator.cli import main

sys.exit(main())
