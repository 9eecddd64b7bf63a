import sys

from citystat.cli import main

sys.exit(main())
