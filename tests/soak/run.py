#!/usr/bin/env python3
"""`make soak`: `sinkdns serve` under more load than it can serve plus a malformed-packet flood.

What it checks, and why each bound is what it is (issue 7, "Load and faults"):

- dnsperf at its maximum (1,000 queries outstanding) and a second sender looping the malformed corpus
  (tests/data/malformed) for `--duration` seconds: the server must answer well-formed queries in every
  second of it, or the flood has taken it down.
- RSS, sampled every second, must stay within the baseline (after start-up and a warm-up) + 150 MiB:
  every queue and cache is bounded, so overload must not turn into growth.
- Once both stop, a normal load (1,000 qps for a second, no query lost) must be served within 5 s:
  what piled up in socket buffers and upstream waits drains instead of lingering. The recovery time is
  when the first loss-free second began, so its resolution is that of the runs (about a second).
- SIGTERM must end the process with status 0 within 5 s (it drains what is in flight first).

Loopback only: nsd plays the internet (tests/bench/bench.py's wildcard zone), the policy is 100,000
generated names under .example. Every process is started here and stopped by PID, also on errors.
Run from the repository root: `python -m tests.soak.run [--duration S]`; exits 1 if a bound is broken.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.bench import (
    BLOCK_IP, LOOPBACK, ZONE, Proc, binary, free_port, rss_mib, say, start_nsd, synthetic_names, wait_answer,
    write_lines,
)
from tests.soak.flood import Flood, load_corpus

RSS_HEADROOM_MIB = 150.0
RECOVERY_LIMIT = 5.0
STOP_LIMIT = 5.0
NORMAL_QPS = 1000
QUERY_LINES = 300_000
FLOOD_RATE = 20_000


@dataclass
class Figures:
    """What the report prints; `broken` holds one line per bound that did not hold."""

    sent: int = 0
    answered: int = 0
    lost: int = 0
    slowest_second: float = 0.0  # fewest answers in any one second of the overload
    flood_sent: int = 0
    baseline_mib: float = 0.0
    peak_mib: float = 0.0
    recovery_s: float | None = None
    stop_s: float | None = None
    exit_code: int | None = None
    broken: list[str] = field(default_factory=list)


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


def start_sinkdns(top: Path, zones: Path, upstream: int, probe: str) -> tuple[Proc, int]:
    port = free_port()
    run = top / "sinkdns"
    run.mkdir()
    argv = [sys.executable, "-m", "sinkdns", "serve", "--listen", f"{LOOPBACK}:{port}",
            "--upstream", f"{LOOPBACK}:{upstream}", "--zones", str(zones), "--block-ip", BLOCK_IP,
            "--metrics", "off", "--block-page", f"{LOOPBACK}:0", "--state-dir", str(run / "state")]
    proc = Proc("sinkdns", argv, Path.cwd(), run / "sinkdns.log")
    wait_answer(proc, port, probe, BLOCK_IP, 120)  # the last name of the list: the whole policy is loaded
    return proc, port


def dnsperf(top: Path, port: int, datafile: Path, seconds: float, *extra: str) -> Proc:
    argv = [binary("dnsperf") or "dnsperf", "-s", LOOPBACK, "-p", str(port), "-d", str(datafile),
            "-l", f"{seconds:g}", "-c", "4", "-t", "1", "-S", "1", *extra]
    return Proc("dnsperf", argv, top, top / f"dnsperf-{time.monotonic_ns()}.out")


def summary(proc: Proc, seconds: float) -> dict:
    """Wait for one dnsperf run; its totals and its answers per second."""
    try:
        proc.p.wait(seconds + 30)
    finally:
        proc.stop()
    text = proc.log.read_text(errors="replace")
    out: dict = {"per_second": [float(q) for q in re.findall(r"^\d+\.\d+: ([\d.]+)$", text, re.M)]}
    for key, rx in (("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                    ("lost", r"Queries lost:\s+(\d+)")):
        if m := re.search(rx, text):
            out[key] = int(m.group(1))
    if "sent" not in out:
        raise RuntimeError("dnsperf: " + " / ".join(text.strip().splitlines()[-3:]))
    return out


def normal_second(top: Path, port: int, datafile: Path) -> bool:
    """A second of normal load: NORMAL_QPS queries, every one answered."""
    result = summary(dnsperf(top, port, datafile, 1, "-Q", str(NORMAL_QPS)), 1)
    return result["lost"] == 0 and result["sent"] > 0


def overload(top: Path, server: Proc, port: int, datafile: Path, seconds: float, flood_rate: int,
             figures: Figures) -> None:
    """dnsperf at its maximum and the flood together, RSS sampled every second meanwhile."""
    flood = Flood((LOOPBACK, port), load_corpus(), flood_rate)
    perf = dnsperf(top, port, datafile, seconds, "-q", "1000", "-n", "1000")
    flood.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end and server.alive():
            figures.peak_mib = max(figures.peak_mib, rss_mib(server.pid))
            time.sleep(1.0)
    finally:
        figures.flood_sent = flood.stop()
    result = summary(perf, seconds)
    figures.sent, figures.lost = result["sent"], result["lost"]
    figures.answered = result.get("completed", 0)
    whole = result["per_second"][1:-1]  # the first and last intervals are cut by the start and the end
    figures.slowest_second = min(whole, default=0.0)


def recover(top: Path, port: int, datafile: Path, stopped: float) -> float | None:
    """Seconds from the end of the overload to the start of the first loss-free normal second."""
    while (started := time.monotonic()) - stopped <= RECOVERY_LIMIT:
        if normal_second(top, port, datafile):
            return started - stopped
    return None


def terminate(server: Proc) -> tuple[float | None, int | None]:
    """SIGTERM; the seconds until the process exited and its status (None, None: it did not in time)."""
    started = time.monotonic()
    server.p.send_signal(signal.SIGTERM)
    try:
        code = server.p.wait(STOP_LIMIT)
    except subprocess.TimeoutExpired:
        return None, None
    return time.monotonic() - started, code


def check(figures: Figures) -> None:
    if figures.slowest_second <= 0:
        figures.broken.append("a second of the overload went without a single answer")
    if figures.peak_mib > figures.baseline_mib + RSS_HEADROOM_MIB:
        figures.broken.append(f"peak RSS {figures.peak_mib:.0f} MiB over baseline + {RSS_HEADROOM_MIB:.0f} MiB")
    if figures.recovery_s is None:
        figures.broken.append(f"normal load not served without loss within {RECOVERY_LIMIT:g} s")
    if figures.stop_s is None or figures.exit_code != 0:
        figures.broken.append(f"SIGTERM: exit status {figures.exit_code} after {figures.stop_s} s")


def report(figures: Figures, seconds: float, names: int, flood_rate: int) -> str:
    f = figures
    lost_pct = 100 * f.lost / f.sent if f.sent else 0.0
    recovery = f"{f.recovery_s:.1f} s" if f.recovery_s is not None else "not within the limit"
    stop = f"{f.stop_s:.2f} s, status {f.exit_code}" if f.stop_s is not None else "did not exit in time"
    lines = [
        f"soak: {seconds:g} s overload, {names:,} policy names, loopback",
        f"  queries sent {f.sent:,}, answered {f.answered:,}, lost {f.lost:,} ({lost_pct:.1f}%)",
        f"  answers per second: fewest {f.slowest_second:,.0f}, average {f.answered / seconds:,.0f}",
        f"  malformed packets sent {f.flood_sent:,} ({f.flood_sent / seconds:,.0f}/s, "
        f"{'paced at ' + format(flood_rate, ',') if flood_rate else 'unpaced'})",
        f"  RSS baseline {f.baseline_mib:.0f} MiB, peak {f.peak_mib:.0f} MiB "
        f"(+{f.peak_mib - f.baseline_mib:.0f}, limit +{RSS_HEADROOM_MIB:.0f})",
        f"  recovery to loss-free {NORMAL_QPS} qps: {recovery} (limit {RECOVERY_LIMIT:g} s)",
        f"  SIGTERM: {stop} (limit {STOP_LIMIT:g} s)",
        "  result: " + ("PASS" if not f.broken else "FAIL: " + "; ".join(f.broken)),
    ]
    return "\n".join(lines)


def soak(top: Path, seconds: float, names: int, flood_rate: int, seed: int) -> Figures:
    figures = Figures()
    _, upstream = start_nsd(top)
    blocked = synthetic_names(names, seed)
    zones = top / "zones"
    zones.mkdir()
    write_lines(zones / "soak.txt", ["# generated by tests/soak/run.py", *blocked])
    datafile = query_file(top, blocked, seed)
    say("starting sinkdns")
    server, port = start_sinkdns(top, zones, upstream, blocked[-1])
    if not normal_second(top, port, datafile):  # the warm-up: fails only if the set-up is broken
        raise RuntimeError(f"sinkdns loses queries under normal load before the soak:\n{server.tail()}")
    figures.baseline_mib = figures.peak_mib = rss_mib(server.pid)
    say(f"overload for {seconds:g} s")
    overload(top, server, port, datafile, seconds, flood_rate, figures)
    if not server.alive():
        figures.broken.append(f"sinkdns exited with {server.p.returncode} during the overload")
        return figures
    figures.recovery_s = recover(top, port, datafile, time.monotonic())
    figures.stop_s, figures.exit_code = terminate(server)
    check(figures)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of overload (default 60)")
    parser.add_argument("--names", type=int, default=100_000, help="names in the generated policy")
    parser.add_argument("--flood-rate", type=int, default=FLOOD_RATE,
                        help=f"malformed packets a second (default {FLOOD_RATE:,}; 0: as fast as possible)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for tool in ("dnsperf", "nsd"):
        if binary(tool) is None:
            raise SystemExit(f"error: {tool} is needed (apt-get install {tool})")
    top = Path(tempfile.mkdtemp(prefix="sinkdns-soak-"))
    try:
        figures = soak(top, args.duration, args.names, args.flood_rate, args.seed)
    finally:
        Proc.stop_all()
        shutil.rmtree(top, ignore_errors=True)
    print(report(figures, args.duration, args.names, args.flood_rate))
    return 1 if figures.broken else 0


if __name__ == "__main__":
    sys.exit(main())
