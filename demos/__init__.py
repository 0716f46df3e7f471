"""What each process adds to the ``casework`` command, one module per concern.

A process's demo module declares ``DEMO`` (``casework.cli.seeding.ProcessDemo``: its scenarios
and how to seed them); a module may declare ``COMMANDS`` (``casework.cli.extensions.Command``),
verbs of its own such as ``casework deliver`` (``loan_messages``) and ``casework resubmit``
(``vendor_documents``). The CLI finds them at run time; adding one edits no shared file.
"""
