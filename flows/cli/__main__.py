"""``python -m flows.cli``: the ``mocap-corpus`` console script."""

import sys

from flows.cli import main

sys.exit(main())
