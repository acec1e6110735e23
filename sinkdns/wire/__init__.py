"""DNS wire format on bytes: the hot path reads and writes messages without an object model."""
