"""The `sinkdns serve` under soak: started on a free loopback port with nsd as its upstream, its
/metrics on port 0 (read from the ready file) so the soak can report what the server counted."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.bench.bench import BLOCK_IP, LOOPBACK, Proc, free_port, wait_answer

# name{labels} value: enough of the Prometheus text format for sinkdns's own counters and gauges.
SAMPLE = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) ([-+0-9.eEinfINFNa]+)$", re.M)


@dataclass
class Server:
    proc: Proc
    port: int
    metrics: str  # host:port of /metrics

    def scrape(self) -> dict[str, float]:
        """Every sample of /metrics as `name{labels}` -> value."""
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as response:
            text = response.read().decode()
        return {key: float(value) for key, value in SAMPLE.findall(text)}

    def errors(self) -> list[str]:
        """The lines it logged at level error: under load and faults there should be none."""
        return [line for line in self.proc.log.read_text(errors="replace").splitlines() if "level=error" in line]


def start_sinkdns(top: Path, zones: Path, upstream: int, probe: str, *extra: str) -> Server:
    """Start it and wait until `probe` (the last name of the policy) is blocked: the policy is loaded."""
    port = free_port()
    run = top / "sinkdns"
    run.mkdir()
    ready = run / "ready.json"
    argv = [sys.executable, "-m", "sinkdns", "serve", "--listen", f"{LOOPBACK}:{port}",
            "--upstream", f"{LOOPBACK}:{upstream}", "--zones", str(zones), "--block-ip", BLOCK_IP,
            "--metrics", f"{LOOPBACK}:0", "--block-page", f"{LOOPBACK}:0", "--state-dir", str(run / "state"),
            "--ready-file", str(ready), *extra]
    proc = Proc("sinkdns", argv, Path.cwd(), run / "sinkdns.log")
    wait_answer(proc, port, probe, BLOCK_IP, 120)
    return Server(proc, port, json.loads(ready.read_text())["metrics"])


def sighup_only(top: Path) -> Path:
    """A config file that turns the zones watcher off: reloads happen when the soak says, by SIGHUP."""
    path = top / "sighup-only.toml"
    path.write_text("[policy]\nwatch_interval = 0\n")
    return path


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    out = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            out += value
    return out


def udp_receive_drops(port: int) -> int:
    """Datagrams the kernel dropped so far because the receive buffer of a UDP socket on `port` (the
    server's) was full: the last column of /proc/net/udp. They never reached the server."""
    drops = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port:
            drops += int(fields[-1])
    return drops
