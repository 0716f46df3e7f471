"""The case base: declarations, audit, status, queries, human tasks, steps and saga."""
