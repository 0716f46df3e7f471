"""Stand-ins for the systems of record, served by ``python -m casework.sandbox``.

Each module with a FastAPI ``router`` is one system (its ``SCHEMA``, optional, creates its
tables); the sandbox finds them at start (``casework.sandbox.app``), so a new system is a new
module here. Writes that must happen once use ``casework.sandbox.store``'s idempotency machinery.
"""
