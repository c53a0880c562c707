import sys

from postmaster.cli import main

sys.exit(main())
