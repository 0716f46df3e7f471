"""Systems of record: one module per system (records, requests, activity class, read-only tools)."""
