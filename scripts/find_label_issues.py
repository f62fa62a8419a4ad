#!/usr/bin/env python
"""Find the images whose label is likely wrong: `python scripts/find_label_issues.py --help` tells how.

The command lives in cli/commands/find_label_issues.py; installed with pip, it is also the command
`lic-find-label-issues`.
"""

import sys

from cli.commands.find_label_issues import main

if __name__ == "__main__":
    sys.exit(main())
