"""Re-running a range of an input topic through the same processors, without touching the live group."""
