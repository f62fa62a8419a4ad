#!/usr/bin/env python
"""Hyperparameter search with Optuna over fit.py's options: `python scripts/search.py --help` tells how.

The command lives in cli/commands/search.py; installed with pip, it is also the command `lic-search`.
"""

import sys

from cli.commands.search import main

if __name__ == "__main__":
    sys.exit(main())
