"""One live pipeline worker: the incident feed, entitlement intake and store, sweeps, the reports
agent and the emitter, wired together by `app.py`."""
