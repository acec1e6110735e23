"""Real peers for the tests: an nsd upstream, the sinkdns process, and a fake upstream that misbehaves."""
