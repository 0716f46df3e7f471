"""The worker entry point: ``python -m workers`` serves the catalogue beside it."""
