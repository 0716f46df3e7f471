"""``casework demo``: one module per process with its demo cases."""
