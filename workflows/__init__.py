"""The catalogue's processes: one module per process (input, outcome, result, workflow)."""
