"""sinkdns: a DNS resolver that sends the visitors of blocked customers' sites to a page saying why."""

__version__ = "0.1.0"
