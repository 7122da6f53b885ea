"""The incident report: what was issued for one incident, read back from the topics and the ledger."""
