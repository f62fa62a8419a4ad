#!/usr/bin/env python
"""The same training run with several seeds, then mean ± std: `python scripts/seeds.py --help` tells how.

The command lives in cli/commands/seeds.py; installed with pip, it is also the command `lic-seeds`.
"""

import sys

from cli.commands.seeds import main

if __name__ == "__main__":
    sys.exit(main())
