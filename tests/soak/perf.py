"""dnsperf runs for the soak: start one, wait for it, read its totals, rcodes and answers per second."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.bench import LOOPBACK, Proc, binary


@dataclass
class Run:
    """What one dnsperf run reports."""

    sent: int
    completed: int
    lost: int
    rcodes: dict[str, int] = field(default_factory=dict)
    per_second: list[float] = field(default_factory=list)

    @property
    def whole_seconds(self) -> list[float]:
        """Answers in each second, without the first and last (cut by the start and the end)."""
        return self.per_second[1:-1]


def dnsperf(top: Path, port: int, datafile: Path, seconds: float, *extra: str) -> Proc:
    """One dnsperf run in the background: 4 clients, answers counted per second, 1 s timeout unless
    `extra` says otherwise (a later -t wins)."""
    argv = [binary("dnsperf") or "dnsperf", "-s", LOOPBACK, "-p", str(port), "-d", str(datafile),
            "-l", f"{seconds:g}", "-c", "4", "-t", "1", "-S", "1", *extra]
    return Proc("dnsperf", argv, top, top / f"dnsperf-{time.monotonic_ns()}.out")


def summary(proc: Proc, seconds: float) -> Run:
    """Wait for one dnsperf run and read its report."""
    try:
        proc.p.wait(seconds + 30)
    finally:
        proc.stop()
    text = proc.log.read_text(errors="replace")
    totals = {key: int(m.group(1)) for key, rx in (("sent", r"Queries sent:\s+(\d+)"),
                                                  ("completed", r"Queries completed:\s+(\d+)"),
                                                  ("lost", r"Queries lost:\s+(\d+)"))
              if (m := re.search(rx, text))}
    if "sent" not in totals:
        raise RuntimeError("dnsperf: " + " / ".join(text.strip().splitlines()[-3:]))
    codes = re.search(r"Response codes:(.*)$", text, re.M)
    rcodes = {name: int(n) for name, n in re.findall(r"([A-Z]+) (\d+) \(", codes.group(1))} if codes else {}
    per_second = [float(q) for q in re.findall(r"^\d+\.\d+: ([\d.]+)$", text, re.M)]
    return Run(totals["sent"], totals.get("completed", 0), totals.get("lost", 0), rcodes, per_second)


def paced(top: Path, port: int, datafile: Path, seconds: float, qps: int, timeout: float = 2.0) -> Proc:
    """A steady load far below capacity: `qps` queries a second, with room for 2 s of answers
    outstanding so a stall delays answers instead of throttling the sender."""
    return dnsperf(top, port, datafile, seconds, "-Q", str(qps), "-q", str(2 * qps), "-t", f"{timeout:g}")
