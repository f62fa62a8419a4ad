#!/usr/bin/env python
"""Fit a checkpoint's temperature on its validation split: `python scripts/calibrate.py --help` tells how.

The command lives in cli/commands/calibrate.py; installed with pip, it is also the command `lic-calibrate`.
"""

import sys

from cli.commands.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
