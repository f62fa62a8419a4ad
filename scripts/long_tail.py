#!/usr/bin/env python
"""Build a long-tailed image folder from a balanced one: `python scripts/long_tail.py --help` tells how.

The command lives in cli/commands/long_tail.py; installed with pip, it is also the command `lic-long-tail`.
"""

import sys

from cli.commands.long_tail import main

if __name__ == "__main__":
    sys.exit(main())
