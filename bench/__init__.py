"""`make bench`: throughput and latency of the live pipeline against the Python limit and a peer.

Every scenario runs in its own namespace (uuid-named topics, consumer group and Redis keys) on
the local stack, with real `makegood worker` processes. `python -m bench --help` lists the knobs.
"""
