"""The testing kit ``tests/``, ``reliability/`` and ``bench/`` share, and a catalogue's own tests
can use:

- ``fakes``: systems of record faked in memory by activity name, calls recorded, answers and
  failures scripted; fakes of the framework's own activities (outbox, agent, agent region model);
- ``scripted_llm``: the scripted OpenAI-compatible model server litellm talks to over HTTP, and
  scripts for it one case at a time; ``stand_in_llm``: a responder answering as the offline
  stand-ins would;
- ``temporal``: the dev server and the time-skipping server from the pinned binaries, the real
  worker on the scripted model, waiting for what converges;
- ``cases``: looking at a running case through its queries;
- ``signing``: decision keys for a session or a run, and decisions signed as people sign them;
- ``stack``: an embedded stack (``casework up``) on free ports;
- ``recorder``: the history recorder, driven by the scenarios each process declares.
"""
