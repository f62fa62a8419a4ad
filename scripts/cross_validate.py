#!/usr/bin/env python
"""K-fold cross-validation of a training run: `python scripts/cross_validate.py --help` tells how.

The command lives in cli/commands/cross_validate.py; installed with pip, it is also the command `lic-cross-validate`.
"""

import sys

from cli.commands.cross_validate import main

if __name__ == "__main__":
    sys.exit(main())
