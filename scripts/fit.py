#!/usr/bin/env python
"""Train an image classifier, then test its best checkpoint: `python scripts/fit.py --help` tells how.

The command lives in cli/commands/fit.py; installed with pip, it is also the command `lic-fit`.
"""

import sys

from cli.commands.fit import main

if __name__ == "__main__":
    sys.exit(main())
