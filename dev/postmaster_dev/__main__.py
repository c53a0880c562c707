"""``python -m postmaster_dev up|down|env|status|kubectl``."""

import sys

from .cli import main

sys.exit(main())
