#!/usr/bin/env python3
"""How long `sinkdns serve` stops answering while a 1,000,000-rule list reloads.

A reload parses in an executor thread, but anything that holds the GIL for long (a garbage collection
walking millions of objects, a big C-level operation such as freeing the old index) stops the event
loop with it, and queries pile up in the kernel's receive buffer until it overflows. The probe
(probe.py: a query every 5 ms) measures that directly: the longest gap between two answers and the
longest wait of one query, from 0.5 s before the SIGHUP until 1 s after the new list answers.

Light by design (the probe alone is 200 queries a second) so it can run beside other work; `--qps`
adds the reload soak's paced dnsperf load (nsd upstream) meanwhile. Run from the repository root:
`python -m tests.soak.lag [--reloads 3] [--qps 0]`; loopback only, every process stopped by PID.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.bench import BLOCK_IP, Proc, say, start_nsd, wait_answer
from tests.soak.perf import paced, summary
from tests.soak.probe import Lag, Probe
from tests.soak.reloads import BIG_RULES, BigPolicy, canary, list_names, query_file
from tests.soak.server import sighup_only, start_sinkdns

BEFORE = 0.5  # probed before the SIGHUP: the idle gap, for comparison
AFTER = 1.0  # probed after the new list answers: the old index is freed and memory trimmed then
RELOAD_TIMEOUT = 120.0
MIN_RULES = 20_000  # the load's query file samples that many listed names


def measure(rules: int, reloads: int, qps: int, seed: int) -> list[tuple[Lag, float]]:
    """(the probe's figures, SIGHUP to the new list answering) for each reload."""
    top = Path(tempfile.mkdtemp(prefix="sinkdns-lag-"))
    try:
        zones = top / "zones"
        zones.mkdir()
        say(f"generating a {rules:,}-rule list")
        names = list_names(seed)[:rules]
        policy = BigPolicy(zones, names)
        policy.rewrite(0)
        _, upstream = start_nsd(top)
        say("starting sinkdns")
        server = start_sinkdns(top, zones, upstream, canary(0), "--config", str(sighup_only(top)))
        load = paced(top, server.port, query_file(top, names, seed), reloads * 30.0, qps) if qps else None
        results = []
        for n in range(1, reloads + 1):
            policy.rewrite(n)
            probe = Probe(server.port, names[0], RELOAD_TIMEOUT)
            probe.start()
            time.sleep(BEFORE)
            sighup = time.monotonic()
            server.proc.p.send_signal(signal.SIGHUP)
            wait_answer(server.proc, server.port, canary(n), BLOCK_IP, RELOAD_TIMEOUT)
            took = time.monotonic() - sighup
            time.sleep(AFTER)
            lag = probe.result()
            results.append((lag, took))
            say(f"reload {n}: in force after {took:.2f} s; longest gap between answers {lag.longest_gap * 1000:.0f} ms, "
                f"longest wait {lag.worst_wait * 1000:.0f} ms, answered {lag.answered:,} of {lag.sent:,}")
        if load is not None:
            load.p.send_signal(signal.SIGINT)
            run = summary(load, 0)
            say(f"load: sent {run.sent:,}, answered {run.completed:,}, lost {run.lost:,}")
        server.proc.stop()
        return results
    finally:
        Proc.stop_all()
        shutil.rmtree(top, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=BIG_RULES, help=f"rules in the list (default {BIG_RULES:,})")
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--qps", type=int, default=0,
                        help="queries a second of the reload soak's paced dnsperf load meanwhile (default 0: none)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not MIN_RULES <= args.rules <= BIG_RULES or args.reloads < 1 or args.qps < 0:
        parser.error(f"--rules from {MIN_RULES:,} to {BIG_RULES:,}, --reloads at least 1, --qps not negative")
    results = measure(args.rules, args.reloads, args.qps, args.seed)
    gaps = [lag.longest_gap * 1000 for lag, _ in results]
    print(f"longest gap between answers, ms: {', '.join(f'{g:.0f}' for g in gaps)} (median {statistics.median(gaps):.0f}); "
          f"reload s: {', '.join(f'{took:.2f}' for _, took in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
