"""The reload scenario of `make soak`: policy reloads under a steady load lose no answer.

One server, one paced load (far below capacity, the same query file each time), three phases:
A without reloads (the baseline), B reloading the shipped-size policy (a copy of zones/, every file
rewritten) every second, C reloading a generated 1,000,000-rule list every 10 s. Reloads are by SIGHUP
only (the watcher is off), each one after the rewrite is complete, so their number is the soak's.
A probe (probe.py: a blocked name every 5 ms) beside the load reports the longest time the server
answered nothing in each phase: the event loop's longest stall.

The tolerance is zero: a load paced at a tenth of capacity has no reason to lose a query, so every
phase must answer every query it sent (dnsperf's "lost", 2 s timeout), all NOERROR (a reload must not
turn an answer into SERVFAIL), and B and C must answer as many queries as A, less PACING_SLACK (what
dnsperf's pacing varies by: a stall shows as lost queries, as 2 s of queries fit in its window). Each
reload phase ends by checking that its last rewrite is in force (a canary name is blocked).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.bench import BLOCK_IP, ZONE, rss_mib, say, synthetic_names, wait_answer, write_lines
from tests.soak.perf import Run, paced, summary
from tests.soak.probe import Probe
from tests.soak.server import Server, sighup_only, start_sinkdns, total, udp_receive_drops

SHIPPED_ZONES = Path(__file__).resolve().parents[2] / "zones"
SHIPPED_BLOCKED = ("malware.example", "x.phishing.example", "ads.example", "tracker.example", "pixel.example",
                   "kiwifarms.net", "www.kiwifarms.st", "metrics.example.net")
SMALL_PERIOD = 1.0
BIG_PERIOD = 10.0
BIG_RULES = 1_000_000
LIST_ZONE = f"list.{ZONE}"  # under nsd's wildcard: forwarded while the list is not in force, blocked after
RELOAD_QPS = 2000
LOAD_LINES = 100_000
PACING_SLACK = 0.001  # dnsperf's pacing sends a few queries more or fewer per phase (8 in 40,000 here)


@dataclass
class Phase:
    name: str
    run: Run
    reloads: int  # successful reloads the server counted during the phase
    peak_mib: float
    kernel_drops: int  # queries the kernel dropped meanwhile, the server's receive buffer being full
    longest_gap: float  # seconds without an answer to the probe: the longest stall of the event loop


@dataclass
class Outcome:
    phases: list[Phase] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


def list_names(seed: int) -> list[str]:
    """BIG_RULES names shaped like a real list, under LIST_ZONE."""
    return [name.removesuffix(".example") + "." + LIST_ZONE for name in synthetic_names(BIG_RULES, seed)]


def query_file(top: Path, listed: list[str], seed: int) -> Path:
    """Three in ten names blocked by the shipped policy, two in ten from the big list (forwarded in A
    and B, blocked in C), three in ten cached forwarded names, two in ten new forwarded names: all
    answered NOERROR by sinkdns or nsd's wildcard."""
    rng = random.Random(seed)
    cached = [f"c{i}.{ZONE}" for i in range(256)]
    sample = rng.sample(listed, 20_000)

    def line(i: int) -> str:
        r = rng.random()
        name = (rng.choice(SHIPPED_BLOCKED) if r < 0.3 else rng.choice(sample) if r < 0.5
                else rng.choice(cached) if r < 0.8 else f"r{i}.{ZONE}")
        return f"{name} A"

    return write_lines(top / "reload-queries.txt", (line(i) for i in range(LOAD_LINES)))


def replace_file(path: Path, text: str) -> None:
    """Write whole, then rename over: a reload never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def canary(n: int) -> str:
    return f"reload-{n}.canary.{ZONE}"


class SmallPolicy:
    """The shipped zones/: every file rewritten as it is, the domain list with one more name."""

    def __init__(self, zones: Path) -> None:
        self.files = {p: p.read_text() for p in sorted(zones.iterdir()) if p.is_file() and p.suffix != ".md"}
        self.domains = zones / "example-domains.txt"

    def rewrite(self, n: int) -> None:
        for path, text in self.files.items():
            replace_file(path, text + (canary(n) + "\n" if path == self.domains else ""))


class BigPolicy:
    """The generated list, rewritten whole with one more name."""

    def __init__(self, zones: Path, names: list[str]) -> None:
        self.path = zones / "big-list.txt"
        self.body = "\n".join(names) + "\n"

    def rewrite(self, n: int) -> None:
        replace_file(self.path, canary(n) + "\n" + self.body)


def phase(top: Path, server: Server, datafile: Path, seconds: float, name: str,
          policy: SmallPolicy | BigPolicy | None = None, period: float = 0.0, first: int = 0) -> tuple[Phase, int]:
    """The paced load for `seconds`; meanwhile, every `period`, `policy` rewritten and SIGHUP sent.
    Returns the phase and the number of the last rewrite."""
    before = total(server.scrape(), "sinkdns_policy_reloads_total", result="success")
    drops = udp_receive_drops(server.port)
    perf = paced(top, server.port, datafile, seconds, RELOAD_QPS)
    probe = Probe(server.port, SHIPPED_BLOCKED[0], seconds + 5)
    probe.start()
    started = time.monotonic()
    end = started + seconds
    n, peak, next_sample = first, 0.0, started
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            peak = max(peak, rss_mib(server.proc.pid))
            next_sample = now + 1.0
        if policy is not None and now >= started + (n - first) * period:
            n += 1
            policy.rewrite(n)
            server.proc.p.send_signal(signal.SIGHUP)
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    run = summary(perf, seconds)
    gap = probe.result().longest_gap
    drops = udp_receive_drops(server.port) - drops
    if policy is not None:  # the last rewrite is in force: the reloads were real
        wait_answer(server.proc, server.port, canary(n), BLOCK_IP, 120)
    reloads = total(server.scrape(), "sinkdns_policy_reloads_total", result="success") - before
    return Phase(name, run, int(reloads), peak, drops, gap), n


def check(outcome: Outcome) -> None:
    baseline = outcome.phases[0].run
    for p in outcome.phases:
        if p.run.lost:
            outcome.broken.append(f"phase {p.name}: {p.run.lost} queries lost")
        if set(p.run.rcodes) - {"NOERROR"}:
            outcome.broken.append(f"phase {p.name}: answers other than NOERROR: {p.run.rcodes}")
        if p.run.completed < baseline.completed * (1 - PACING_SLACK):
            outcome.broken.append(f"phase {p.name}: {p.run.completed:,} answers, fewer than A's {baseline.completed:,}")


def reloads(top: Path, upstream: int, seconds: float, seed: int) -> Outcome:
    outcome = Outcome()
    zones = top / "reload-zones"
    shutil.copytree(SHIPPED_ZONES, zones)
    say(f"generating a {BIG_RULES:,}-rule list")
    listed = list_names(seed)
    datafile = query_file(top, listed, seed)
    small, big = SmallPolicy(zones), BigPolicy(zones, listed)
    say("starting sinkdns with the shipped policy")
    server = start_sinkdns(top, zones, upstream, SHIPPED_BLOCKED[0], "--config", str(sighup_only(top)))
    say(f"phase A: {RELOAD_QPS:,} qps for {seconds:g} s, no reloads")
    outcome.phases.append(phase(top, server, datafile, seconds, "A")[0])
    say(f"phase B: the same, the shipped policy reloaded every {SMALL_PERIOD:g} s")
    result, n = phase(top, server, datafile, seconds, "B", small, SMALL_PERIOD)
    outcome.phases.append(result)
    say(f"adding the {BIG_RULES:,}-rule list")
    big.rewrite(n + 1)
    server.proc.p.send_signal(signal.SIGHUP)
    wait_answer(server.proc, server.port, canary(n + 1), BLOCK_IP, 180)
    say(f"phase C: the same, the {BIG_RULES:,}-rule list reloaded every {BIG_PERIOD:g} s")
    outcome.phases.append(phase(top, server, datafile, seconds, "C", big, BIG_PERIOD, n + 1)[0])
    server.proc.stop()
    check(outcome)
    return outcome


def report(outcome: Outcome, seconds: float) -> str:
    lines = [f"reloads: {RELOAD_QPS:,} qps paced for {seconds:g} s per phase, loopback"]
    for p in outcome.phases:
        other = {k: v for k, v in p.run.rcodes.items() if k != "NOERROR"}
        lines.append(
            f"  phase {p.name}: sent {p.run.sent:,}, answered {p.run.completed:,}, lost {p.run.lost:,}, "
            f"fewest answers in a second {min(p.run.whole_seconds, default=0):,.0f}, "
            f"reloads {p.reloads}, peak RSS {p.peak_mib:.0f} MiB, dropped in a full receive buffer {p.kernel_drops:,}, "
            f"longest gap between answers {p.longest_gap * 1000:.0f} ms" + (f", rcodes {other}" if other else ""))
    lines.append("  result: " + ("PASS" if not outcome.broken else "FAIL: " + "; ".join(outcome.broken)))
    return "\n".join(lines)
