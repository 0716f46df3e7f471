"""Labelled cases for every agent (``<agent>.yaml``) and how each process evaluates its agents
(``<process>.py``: an ``AgentEval`` each). Run them with ``casework eval``; see
docs/evaluation.md."""
