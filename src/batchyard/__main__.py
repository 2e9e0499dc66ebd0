"""`python -m batchyard` is the `batchyard` command."""

import sys

from batchyard.cli import main

sys.exit(main())
