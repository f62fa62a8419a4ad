#!/usr/bin/env python
"""Classify image files with a checkpoint: `python scripts/predict.py --help` tells how.

The command lives in cli/commands/predict.py; installed with pip, it is also the command `lic-predict`.
"""

import sys

from cli.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
