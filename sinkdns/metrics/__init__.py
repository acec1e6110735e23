"""Metrics: plain counts taken as a snapshot, summed across workers, turned into Prometheus families at scrape time."""
