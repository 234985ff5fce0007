"""`python -m gearspec` is the `gearspec` command."""

import sys

from gearspec.cli import main

sys.exit(main())
