import sys

from postmaster.cli.main import main

sys.exit(main())
