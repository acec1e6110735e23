"""The overload scenario of `make soak`: more load than the server can serve, plus a malformed flood.

What it checks, and why each bound is what it is:

- dnsperf at its maximum (1,000 queries outstanding) and a second sender looping the malformed corpus
  (tests/data/malformed) for `--duration` seconds: the server must answer well-formed queries in every
  second of it, or the flood has taken it down.
- RSS, sampled every second, must stay within the baseline (after start-up and a warm-up) + 150 MiB:
  every queue and cache is bounded, so overload must not turn into growth.
- Once both stop, a normal load (1,000 qps for a second, no query lost) must be served within 5 s:
  what piled up in socket buffers and upstream waits drains instead of lingering. The recovery time is
  when the first loss-free second began, so its resolution is that of the runs (about a second).
- After the flood, SETTLE_SECONDS of that normal load must not make RSS grow (by SETTLE_GROWTH_MIB at
  most): what stays above the baseline is what the bounded caches hold, reported beside their sizes.
- SIGTERM must end the process with status 0 within 5 s (it drains what is in flight first).

The server's own counters (/metrics) are sampled every TIMELINE_STEP seconds, so the report can say what
it did with the load: upstream answers by rcode, sheds, packets dropped, upstream health; the kernel's
count of datagrams dropped in the server's full receive buffer says what never reached it.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.bench import LOOPBACK, ZONE, rss_mib, say, write_lines
from tests.soak.flood import Flood, load_corpus
from tests.soak.perf import dnsperf, summary
from tests.soak.server import Server, total, udp_receive_drops

RSS_HEADROOM_MIB = 150.0
RECOVERY_LIMIT = 5.0
STOP_LIMIT = 5.0
NORMAL_QPS = 1000
QUERY_LINES = 300_000
FLOOD_RATE = 20_000
SETTLE_SECONDS = 10
SETTLE_GROWTH_MIB = 5.0
TIMELINE_STEP = 5  # seconds between two scrapes of the server's counters


@dataclass
class Sample:
    """The counters at one moment of the overload (seconds since it began)."""

    at: float
    rss_mib: float
    counters: dict[str, float]


@dataclass
class Figures:
    """What the report prints; `broken` holds one line per bound that did not hold."""

    sent: int = 0
    answered: int = 0
    lost: int = 0
    rcodes: dict[str, int] = field(default_factory=dict)
    per_second: list[float] = field(default_factory=list)  # dnsperf's answers in each second
    slowest_second: float = 0.0  # fewest answers in any whole second of the overload
    flood_sent: int = 0
    kernel_drops: int = 0  # datagrams dropped in the server's full receive buffer during the overload
    baseline_mib: float = 0.0
    peak_mib: float = 0.0
    after_mib: float = 0.0  # once the flood stopped and normal load was served for a while
    settled_mib: float = 0.0  # SETTLE_SECONDS of normal load later
    cache_entries: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what the server logged at level error
    recovery_s: float | None = None
    stop_s: float | None = None
    exit_code: int | None = None
    broken: list[str] = field(default_factory=list)


COUNTERS = {  # what the timeline reports: label -> (metric, labels)
    "upstream NOERROR": ("sinkdns_upstream_requests_total", {"rcode": "NOERROR"}),
    "upstream REFUSED": ("sinkdns_upstream_requests_total", {"rcode": "REFUSED"}),
    "upstream timeout": ("sinkdns_upstream_requests_total", {"rcode": "timeout"}),
    "shed": ("sinkdns_upstream_shed_total", {}),
    "dropped": ("sinkdns_dropped_packets_total", {}),
    "SERVFAIL": ("sinkdns_queries_total", {"result": "servfail"}),
}


def counters(server: Server) -> dict[str, float]:
    samples = server.scrape()
    out = {label: total(samples, name, **labels) for label, (name, labels) in COUNTERS.items()}
    out["upstream healthy"] = total(samples, "sinkdns_upstream_healthy")
    out["cache entries"] = total(samples, "sinkdns_cache_entries")
    return out


def query_file(directory: Path, blocked: list[str], seed: int) -> Path:
    """One in ten names blocked, six in ten from a small set that stays cached, the rest new names
    that go to nsd: the mix of a busy resolver."""
    rng = random.Random(seed)
    cached = [f"c{i}.{ZONE}" for i in range(256)]
    sample = rng.sample(blocked, 20_000)

    def line(i: int) -> str:
        r = rng.random()
        name = rng.choice(sample) if r < 0.1 else rng.choice(cached) if r < 0.7 else f"u{i}.{ZONE}"
        return f"{name} A"

    return write_lines(directory / "queries.txt", (line(i) for i in range(QUERY_LINES)))


def normal_second(top: Path, port: int, datafile: Path) -> bool:
    """A second of normal load: NORMAL_QPS queries, every one answered."""
    result = summary(dnsperf(top, port, datafile, 1, "-Q", str(NORMAL_QPS)), 1)
    return result.lost == 0 and result.sent > 0


def overload(top: Path, server: Server, datafile: Path, seconds: float, flood_rate: int, figures: Figures) -> None:
    """dnsperf at its maximum and the flood together; meanwhile RSS every second, the counters every
    TIMELINE_STEP seconds and at the end."""
    flood = Flood((LOOPBACK, server.port), load_corpus(), flood_rate)
    perf = dnsperf(top, server.port, datafile, seconds, "-q", "1000", "-n", "1000")
    drops = udp_receive_drops(server.port)
    flood.start()
    started = time.monotonic()
    try:
        for second in range(int(seconds)):
            if not server.proc.alive():
                break
            rss = rss_mib(server.proc.pid)
            figures.peak_mib = max(figures.peak_mib, rss)
            if second % TIMELINE_STEP == 0:  # a scrape costs the server a little: not every second
                figures.samples.append(Sample(time.monotonic() - started, rss, counters(server)))
            time.sleep(max(0.0, started + second + 1 - time.monotonic()))
        if server.proc.alive():
            figures.samples.append(Sample(time.monotonic() - started, rss_mib(server.proc.pid), counters(server)))
    finally:
        figures.flood_sent = flood.stop()
        figures.kernel_drops = udp_receive_drops(server.port) - drops
    result = summary(perf, seconds)
    figures.sent, figures.lost, figures.answered = result.sent, result.lost, result.completed
    figures.rcodes, figures.per_second = result.rcodes, result.per_second
    figures.slowest_second = min(result.whole_seconds, default=0.0)


def recover(top: Path, port: int, datafile: Path, stopped: float) -> float | None:
    """Seconds from the end of the overload to the start of the first loss-free normal second."""
    while (started := time.monotonic()) - stopped <= RECOVERY_LIMIT:
        if normal_second(top, port, datafile):
            return started - stopped
    return None


def settle(top: Path, server: Server, datafile: Path, figures: Figures) -> None:
    """RSS once normal load is served again, and SETTLE_SECONDS of normal load later."""
    figures.after_mib = rss_mib(server.proc.pid)
    summary(dnsperf(top, server.port, datafile, SETTLE_SECONDS, "-Q", str(NORMAL_QPS)), SETTLE_SECONDS)
    figures.settled_mib = rss_mib(server.proc.pid)
    figures.cache_entries = counters(server)["cache entries"]


def terminate(server: Server) -> tuple[float | None, int | None]:
    """SIGTERM; the seconds until the process exited and its status (None, None: it did not in time)."""
    started = time.monotonic()
    server.proc.p.send_signal(signal.SIGTERM)
    try:
        code = server.proc.p.wait(STOP_LIMIT)
    except subprocess.TimeoutExpired:
        return None, None
    return time.monotonic() - started, code


def check(figures: Figures) -> None:
    f = figures
    if f.slowest_second <= 0:
        f.broken.append("a second of the overload went without a single answer")
    if f.peak_mib > f.baseline_mib + RSS_HEADROOM_MIB:
        f.broken.append(f"peak RSS {f.peak_mib:.0f} MiB over baseline + {RSS_HEADROOM_MIB:.0f} MiB")
    if f.recovery_s is None:
        f.broken.append(f"normal load not served without loss within {RECOVERY_LIMIT:g} s")
    if f.settled_mib > f.after_mib + SETTLE_GROWTH_MIB:
        f.broken.append(f"RSS grew from {f.after_mib:.0f} to {f.settled_mib:.0f} MiB under normal load after the flood")
    if f.stop_s is None or f.exit_code != 0:
        f.broken.append(f"SIGTERM: exit status {f.exit_code} after {f.stop_s} s")
    if f.errors:
        f.broken.append(f"the server logged {len(f.errors):,} errors")


def soak(top: Path, server: Server, datafile: Path, seconds: float, flood_rate: int) -> Figures:
    figures = Figures()
    if not normal_second(top, server.port, datafile):  # the warm-up: fails only if the set-up is broken
        raise RuntimeError(f"sinkdns loses queries under normal load before the soak:\n{server.proc.tail()}")
    figures.baseline_mib = figures.peak_mib = rss_mib(server.proc.pid)
    say(f"overload for {seconds:g} s")
    overload(top, server, datafile, seconds, flood_rate, figures)
    if not server.proc.alive():
        figures.broken.append(f"sinkdns exited with {server.proc.p.returncode} during the overload")
        return figures
    figures.recovery_s = recover(top, server.port, datafile, time.monotonic())
    settle(top, server, datafile, figures)
    figures.stop_s, figures.exit_code = terminate(server)
    figures.errors = server.errors()
    check(figures)
    return figures


def timeline(samples: list[Sample], per_second: list[float]) -> list[str]:
    """Between two samples: dnsperf's answers, the rate of each counter, RSS, upstream health."""
    lines = []
    for a, b in zip(samples, samples[1:]):
        span = b.at - a.at
        answers = per_second[round(a.at):round(b.at)]
        rates = ", ".join(f"{label} {(b.counters[label] - a.counters[label]) / span:,.0f}" for label in COUNTERS)
        lines.append(f"    {a.at:3.0f}-{b.at:3.0f} s, a second: answers {sum(answers) / max(len(answers), 1):,.0f}, "
                     f"{rates}; RSS {b.rss_mib:.0f} MiB, upstream healthy {b.counters['upstream healthy']:g}")
    return lines


def report(figures: Figures, seconds: float, names: int, flood_rate: int) -> str:
    f = figures
    lost_pct = 100 * f.lost / f.sent if f.sent else 0.0
    recovery = f"{f.recovery_s:.1f} s" if f.recovery_s is not None else "not within the limit"
    stop = f"{f.stop_s:.2f} s, status {f.exit_code}" if f.stop_s is not None else "did not exit in time"
    rate = f"paced at {flood_rate:,}" if flood_rate else "unpaced"
    lines = [
        f"overload: {seconds:g} s, {names:,} policy names, loopback",
        f"  queries sent {f.sent:,}, answered {f.answered:,}, lost {f.lost:,} ({lost_pct:.1f}%); rcodes {f.rcodes}",
        f"  answers per second: fewest {f.slowest_second:,.0f}, average {f.answered / seconds:,.0f}",
        f"  malformed packets sent {f.flood_sent:,} ({f.flood_sent / seconds:,.0f}/s, {rate}); "
        f"dropped by the kernel in the server's full receive buffer {f.kernel_drops:,}",
        f"  RSS baseline {f.baseline_mib:.0f} MiB, peak {f.peak_mib:.0f} MiB "
        f"(+{f.peak_mib - f.baseline_mib:.0f}, limit +{RSS_HEADROOM_MIB:.0f}); after the flood {f.after_mib:.0f} MiB, "
        f"{SETTLE_SECONDS} s of normal load later {f.settled_mib:.0f} MiB (limit +{SETTLE_GROWTH_MIB:g}), "
        f"{f.cache_entries:,.0f} cache entries",
        f"  recovery to loss-free {NORMAL_QPS} qps: {recovery} (limit {RECOVERY_LIMIT:g} s)",
        f"  SIGTERM: {stop} (limit {STOP_LIMIT:g} s)",
        f"  errors logged by the server: {len(f.errors):,}" + (f", the first: {f.errors[0][:300]}" if f.errors else ""),
        "  server counters during the overload:",
        *timeline(f.samples, f.per_second),
        "  result: " + ("PASS" if not f.broken else "FAIL: " + "; ".join(f.broken)),
    ]
    return "\n".join(lines)
