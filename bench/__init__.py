"""casework's benchmark harness: ``python -m bench [--quick]``, or ``make bench[-quick]``."""
