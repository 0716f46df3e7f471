"""Stand-ins for the systems of record, served by ``python -m casework.sandbox``."""
