"""What an SRE on call looks at: metrics, health, the HTTP endpoint serving both, and logs.

Generic: nothing here knows the worker's collaborators (worker/observe.py wires them in)."""
