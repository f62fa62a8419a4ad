#!/usr/bin/env python
"""Evaluate a checkpoint on a test split or a folder of labelled images: `python scripts/test.py --help` tells how.

The command lives in cli/commands/test.py; installed with pip, it is also the command `lic-test`.
"""

import sys

from cli.commands.test import main

if __name__ == "__main__":
    sys.exit(main())
