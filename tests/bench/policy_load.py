#!/usr/bin/env python3
"""Policy load and reload: how fast a million list rules are ready to answer, and the memory they hold.

Targets (a miss exits 1): the rules ready to answer in under 5 s from exec, resident memory under
250 MB when ready; during a reload the peak at most 2.2 times the ready figure; after 20 reloads
within 25% of the figure after the first (the old index must be freed, not leak or stay frozen).

Why it looks the way it does:

- Synthetic lists in the shapes real ones have (a hosts file, a wildcard domain list, an adblock
  list with a few `@@` allows, comments and blank lines), generated from a seed, so the script needs
  no download and every run parses the same text.
- The real `sinkdns serve` process, timed from exec to its --ready-file: interpreter start, imports,
  the load and the listeners, everything a supervisor waits for. Metrics and the watcher are off so
  only the policy is measured; the block page listens on port 0.
- Memory from /proc/PID/status: VmRSS when ready and after reloads; during a reload VmRSS is sampled
  every few milliseconds and VmHWM, reset first through /proc/PID/clear_refs, catches what sampling
  misses. A reload touches every file (all are parsed again: the worst case) and is complete when the
  `policy reloaded` log line for its generation appears.
- CPU seconds (user + system, /proc/PID/stat) beside wall seconds: the machine may be shared.
- Standard library and sinkdns only; every wait is bounded; only the process it started is signalled,
  by PID; one temp dir, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024

LOAD_SECONDS = 5.0
READY_MB = 250
RELOAD_PEAK_RATIO = 2.2
RELOAD_DRIFT = 0.25

START_TIMEOUT = 120.0
RELOAD_TIMEOUT = 120.0
SAMPLE_EVERY = 0.005

TLDS = ("com", "net", "org", "info", "io", "xyz", "de", "ru", "cn", "co.uk", "online", "site", "top", "app")
RELOADED = re.compile(r"msg=\"policy reloaded\".*?\bgeneration=(\d+)")


def random_name(rng: random.Random) -> str:
    """A name shaped like those in real lists: 2-5 labels, mostly a registered domain and a host or two."""
    letters = string.ascii_lowercase + string.digits
    labels = ["".join(rng.choices(letters, k=rng.randint(6, 14)))]
    for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))):
        labels.insert(0, "".join(rng.choices(letters, k=rng.randint(1, 10))))
    return ".".join(labels) + "." + rng.choice(TLDS)


def write_lists(zones: Path, rules: int, seed: int) -> dict[str, int]:
    """Hosts 40%, wildcard domains 30%, adblock 30% of `rules`; returns rules written per file."""
    rng = random.Random(seed)
    shares = {"ads.hosts": 0.4, "trackers.txt": 0.3, "filter.txt": 0.3}
    counts = {name: int(rules * share) for name, share in shares.items()}
    counts["ads.hosts"] += rules - sum(counts.values())
    formats = {
        "ads.hosts": ("# Title: generated hosts\n127.0.0.1 localhost\n::1 localhost\n0.0.0.0 0.0.0.0\n\n",
                      lambda n: f"0.0.0.0 {n}"),
        "trackers.txt": ("# Title: generated wildcard list\n# Entries: many\n\n",
                         lambda n: f"*.{n}" if rng.random() < 0.8 else n),
        "filter.txt": ("! Title: generated adblock list\n! Version: 1\n\n",
                       lambda n: f"@@||{n}^" if rng.random() < 0.01 else f"||{n}^"),
    }
    for name, count in counts.items():
        header, line = formats[name]
        with open(zones / name, "w", encoding="ascii") as f:
            f.write(header)
            for i in range(count):
                if i % 5000 == 4999:
                    f.write(f"\n# section {i // 5000}\n")
                f.write(line(random_name(rng)) + "\n")
    return counts


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False when the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


@dataclass
class Run:
    load_wall: float = 0.0
    load_cpu: float = 0.0
    ready_rss: int = 0
    reload_wall: float = 0.0  # the first reload, SIGHUP to its log line
    reload_peak: int = 0  # the highest of all reloads
    after_first: int = 0
    after_last: int = 0


class Server:
    """One `sinkdns serve` over the zones directory, logging to a file this script reads."""

    def __init__(self, workdir: Path, zones: Path) -> None:
        self.workdir = workdir
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "sinkdns.log"
        config = workdir / "sinkdns.toml"
        config.write_text("[policy]\nwatch_interval = 0\n")
        self.command = [
            sys.executable, "-m", "sinkdns", "serve", "--config", str(config), "--zones", str(zones),
            "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--metrics", "off",
            "--block-page", "127.0.0.1:0", "--state-dir", str(workdir / "state"),
            "--ready-file", str(self.ready_file),
        ]
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait for the ready file; returns the wall seconds from exec."""
        self.ready_file.unlink(missing_ok=True)
        log = open(self.log_file, "wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        while not self.ready_file.exists():
            self.check_alive()
            if time.monotonic() - started > START_TIMEOUT:
                raise RuntimeError(f"not ready after {START_TIMEOUT:.0f} s")
            time.sleep(0.01)
        return time.monotonic() - started

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"sinkdns exited with {self.proc.returncode}: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def loaded_generations(self) -> set[int]:
        return {int(m.group(1)) for m in RELOADED.finditer(self.log())}

    def reload(self, zones: Path, generation: int) -> tuple[float, int]:
        """Touch every file, SIGHUP, wait for `generation` to be loaded; (wall seconds, peak RSS)."""
        pid = self.proc.pid
        hwm_reset = reset_peak(pid)
        now = time.time_ns()
        for path in zones.iterdir():
            os.utime(path, ns=(now, now))
        peak = proc_status(pid)["VmRSS"]
        started = time.monotonic()
        os.kill(pid, signal.SIGHUP)
        while generation not in self.loaded_generations():
            self.check_alive()
            if time.monotonic() - started > RELOAD_TIMEOUT:
                raise RuntimeError(f"reload {generation} not done after {RELOAD_TIMEOUT:.0f} s")
            peak = max(peak, proc_status(pid)["VmRSS"])
            time.sleep(SAMPLE_EVERY)
        seconds = time.monotonic() - started
        if hwm_reset:
            peak = max(peak, proc_status(pid)["VmHWM"])
        return seconds, peak

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def measure(workdir: Path, zones: Path, reloads: int) -> Run:
    server = Server(workdir, zones)
    run = Run()
    try:
        run.load_wall = server.start()
        pid = server.proc.pid
        run.load_cpu = cpu_seconds(pid)
        run.ready_rss = proc_status(pid)["VmRSS"]
        for n in range(1, reloads + 1):
            seconds, peak = server.reload(zones, n + 1)
            run.reload_peak = max(run.reload_peak, peak)
            if n == 1:
                run.reload_wall = seconds
                run.after_first = proc_status(pid)["VmRSS"]
        run.after_last = proc_status(pid)["VmRSS"]
    finally:
        server.stop()
    return run


def report(runs: list[Run], rules: int, reloads: int) -> list[str]:
    """Print the medians against the targets; returns the targets missed."""
    def median(attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    ready = median("ready_rss")
    peak_ratio = statistics.median(r.reload_peak / r.ready_rss for r in runs)
    drift = statistics.median(r.after_last / r.after_first - 1 for r in runs)
    rows = [
        ("load, exec to ready (wall s)", f"{median('load_wall'):.2f}", f"< {LOAD_SECONDS:g}",
         median("load_wall") < LOAD_SECONDS),
        ("load CPU s (user+sys)", f"{median('load_cpu'):.2f}", "", True),
        ("RSS when ready (MB)", f"{ready / MB:.0f}", f"< {READY_MB}", ready < READY_MB * MB),
        ("reload, SIGHUP to loaded (wall s)", f"{median('reload_wall'):.2f}", "", True),
        ("peak RSS during reloads (MB)", f"{median('reload_peak') / MB:.0f}", "", True),
        ("  peak / ready", f"{peak_ratio:.2f}x", f"<= {RELOAD_PEAK_RATIO}x", peak_ratio <= RELOAD_PEAK_RATIO),
        ("RSS after reload 1 (MB)", f"{median('after_first') / MB:.0f}", "", True),
        (f"RSS after reload {reloads} (MB)", f"{median('after_last') / MB:.0f}", "", True),
        (f"  after {reloads} / after 1", f"{drift:+.0%}", f"within {RELOAD_DRIFT:.0%}", abs(drift) <= RELOAD_DRIFT),
    ]
    print(f"\n{rules:,} rules, {len(runs)} run(s), medians; MB = MiB")
    print(f"{'':36} {'value':>8}  {'target':<12}")
    for label, value, target, ok in rows:
        print(f"{label:36} {value:>8}  {target:<12} {'' if ok else 'MISSED'}")
    return [label.strip() for label, _, _, ok in rows if not ok]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=1_000_000, help="rules to generate (default 1,000,000)")
    parser.add_argument("--reloads", type=int, default=20, help="reloads per run (default 20)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are reported (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.reloads < 1 or args.repeat < 1 or args.rules < 1:
        parser.error("--rules, --reloads and --repeat must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through `finally`: the server is stopped
    with tempfile.TemporaryDirectory(prefix="sinkdns-policy-load-") as tmp:
        workdir = Path(tmp)
        zones = workdir / "zones"
        zones.mkdir()
        counts = write_lists(zones, args.rules, args.seed)
        print("generated: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()), flush=True)
        runs = []
        for i in range(args.repeat):
            run = measure(workdir, zones, args.reloads)
            print(f"run {i + 1}: load {run.load_wall:.2f} s wall, {run.load_cpu:.2f} s CPU, "
                  f"ready {run.ready_rss / MB:.0f} MB, reload peak {run.reload_peak / MB:.0f} MB, "
                  f"after 1 {run.after_first / MB:.0f} MB, after {args.reloads} {run.after_last / MB:.0f} MB",
                  flush=True)
            runs.append(run)
    missed = report(runs, args.rules, args.reloads)
    if missed:
        print("missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
