"""Systems of record: the HTTP base every system's activities call through."""
