"""``python -m workers``: run a casework worker for this catalogue (``casework.worker``)."""

from casework.worker import main

main()
