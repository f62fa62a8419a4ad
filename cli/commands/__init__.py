"""One module per command, each with a ``main()`` that returns the exit code: fit, test, calibrate, predict, export,
quantize, seeds, cross_validate and search (scripts/NAME.py, or the installed lic-NAME)."""

from cli import quiet_interrupt_while_loading

quiet_interrupt_while_loading()  # before the command's module imports torch and Lightning (seconds)
