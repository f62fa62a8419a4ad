"""One module per command, each with a ``main()`` that returns the exit code: fit, test, calibrate, predict, export,
quantize, seeds, cross_validate and search (scripts/NAME.py, or the installed lic-NAME)."""
