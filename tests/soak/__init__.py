"""`make soak`: sinkdns under maximum load and a malformed-packet flood, bounded in time (tests/soak/run.py)."""
