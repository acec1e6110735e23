"""The stages a query passes through; `sinkdns.app.build_chain` assembles them in order."""
