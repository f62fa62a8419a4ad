#!/usr/bin/env python
"""Quantize a checkpoint to int8 and compare it with the float model: `python scripts/quantize.py --help`.

The command lives in cli/commands/quantize.py; installed with pip, it is also the command `lic-quantize`.
"""

import sys

from cli.commands.quantize import main

if __name__ == "__main__":
    sys.exit(main())
