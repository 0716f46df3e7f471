"""Evaluating agents on labelled cases: ``casework eval``.

Each agent of the catalogue is run on its labelled cases through its real call path (prompt,
masking, litellm, output validation; the agent region and the sandbox for a tool-using agent),
and scored: schema-valid rate, accuracy, agreement of the policy route computed from its answer
with the labelled route, calibration of its confidence, refusals of injected instructions,
tokens, cost and latency. A policy's ``eval`` section sets the minimums ``--gate`` enforces.

The cases are data (``evals/<agent>.yaml``); how a process turns a case into the agent's call
and its answer into a route is declared once per process (:class:`~casework.eval.hooks.
AgentEval`), beside the cases. The framework finds both at run time and imports neither.
"""
