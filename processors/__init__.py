"""Pure domain logic for makegood: policies, window algebra, remedies, report triage.

Nothing in this package performs I/O or reads a clock; time arrives as int epoch
milliseconds (UTC) and money as int won. See DESIGN.md sections 3 and 4.
"""
