"""The real `sinkdns serve` process on loopback port 0, ready when its --ready-file appears."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

from tests.support.wait import until

ROOT = Path(__file__).resolve().parents[2]


class Sinkdns:
    def __init__(self, workdir: Path, *args: str, listen: tuple[str, ...] = ("127.0.0.1:0",)) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "sinkdns.log"
        self.args = list(args)
        if "--metrics" not in self.args:
            self.args += ["--metrics", "off"]
        if "--block-page" not in self.args:
            self.args += ["--block-page", "127.0.0.1:0"]
        if "--state-dir" not in self.args:
            self.args += ["--state-dir", str(workdir / "state")]
        if "--zones" not in self.args and not any(a.startswith("--config") for a in self.args):
            (workdir / "zones").mkdir(exist_ok=True)
            self.args += ["--zones", str(workdir / "zones")]
        for address in listen:
            self.args += ["--listen", address]
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sinkdns", "serve", "--ready-file", str(self.ready_file), *self.args]

    def start(self, timeout: float = 30.0, while_starting: Callable[[Sinkdns], None] | None = None) -> Sinkdns:
        """Start and wait for the ready file; `while_starting` runs in between (a signal mid-start, say)."""
        self.ready_file.unlink(missing_ok=True)
        self._log = open(self.log_file, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        if while_starting is not None:
            while_starting(self)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"sinkdns exited with {self.proc.returncode}: {self.log()}")
            return self.ready_file.exists()

        until(ready, timeout, "sinkdns to write its ready file")
        self.info = json.loads(self.ready_file.read_text())
        return self

    @property
    def host(self) -> str:
        return self.dns[0][0]

    @property
    def port(self) -> int:
        return self.dns[0][1]

    @property
    def dns(self) -> list[tuple[str, int]]:
        out = []
        for text in self.info["dns"]:
            host, _, port = text.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run a sinkdns command to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "sinkdns", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
