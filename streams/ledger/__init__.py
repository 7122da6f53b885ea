"""The Redis ledger of issued output ids: the store, its rebuild from the output topics, and the
in-flight reconciliation that closes the gap between a broker ack and a ledger write."""
