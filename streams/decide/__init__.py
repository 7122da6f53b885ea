"""From input bytes to the records a decision owes, the same way everywhere.

Shared by the live worker, its sweep processes and the replay, so that a replay publishes byte
for byte what the worker would have: `admit` (decode -> validate, or the reason it is a dead
letter), `entitlements` (one entitlement against every incident), `outputs` (a batch's decisions
and dead letters as encoded records, in a stable order, once per id).
"""
