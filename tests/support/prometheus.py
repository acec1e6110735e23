"""A real Prometheus server (Debian's `prometheus`) on a loopback port, scraping the test's targets.

Prometheus cannot bind port 0 and report it, so a free port is picked and Prometheus is started on it;
if it loses the port to another process it exits, and the next port is tried. Readiness is its
/-/ready endpoint, polled, never slept for.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.system import require, terminate
from tests.support.wait import until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PromQLError(AssertionError):
    """Prometheus refused an expression; the message is its own error text."""


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], scrape_interval: str = "500ms") -> None:
        self.binary = require("prometheus")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_file = self.dir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        """JSON is YAML, so the config needs no YAML library."""
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{
                "job_name": "sinkdns",
                "scrape_timeout": self.scrape_interval,
                "static_configs": [{"targets": self.targets}],
            }],
        }
        path = self.dir / "prometheus.yml"
        path.write_text(json.dumps(config))
        return path

    def start(self, timeout: float = 60.0) -> Prometheus:
        config = self._config()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.port = _free_port()
            with open(self.log_file, "wb") as log:
                self.proc = subprocess.Popen(
                    [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"],
                    stdout=log, stderr=subprocess.STDOUT,
                )
            while self.proc.poll() is None and time.monotonic() < deadline:
                if self._ready():
                    return self
                time.sleep(0.05)
            if "address already in use" not in self.log():
                break
        self.stop()
        raise RuntimeError(f"prometheus did not become ready within {timeout}s: {self.log()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""

    def api(self, path: str, params: dict[str, str] | list[tuple[str, str]]) -> object:
        """`data` of a successful API answer; PromQLError with Prometheus's error text otherwise."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            answer = json.load(exc)
        if answer.get("status") != "success":
            raise PromQLError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (or scalar as a one-element list)."""
        data = self.api("query", {"query": expr})
        return data["result"] if data["resultType"] in ("vector", "matrix") else [{"value": data["result"]}]

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's label_values(match, label) asks for."""
        return self.api(f"label/{label}/values", [("match[]", match)])

    def wait_for_scrapes(self, count: int, timeout: float = 30.0) -> None:
        """Until every target has been scraped `count` times successfully."""
        def scraped() -> bool:
            samples = self.query('sum_over_time(up{job="sinkdns"}[5m])')
            return len(samples) == len(self.targets) and all(float(s["value"][1]) >= count for s in samples)
        until(scraped, timeout, f"{count} successful scrapes of {self.targets}", interval=0.1)

    def stop(self) -> None:
        terminate(self.proc)
