#!/usr/bin/env python
"""Export a checkpoint as a state_dict, TorchScript or ONNX, checked: `python scripts/export.py --help` tells how.

The command lives in cli/commands/export.py; installed with pip, it is also the command `lic-export`.
"""

import sys

from cli.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
