"""System packages the tests use: skip with the install hint locally, fail in CI (SINKDNS_REQUIRE_ALL=1)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

INSTALL_HINTS = {
    "nsd": "apt-get install nsd",
    "dig": "apt-get install bind9-dnsutils",
    "chromium": "apt-get install chromium",
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus",
}


def require(binary: str) -> str:
    """The path of `binary`, or skip (fail when SINKDNS_REQUIRE_ALL is set) naming the package to install."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path:
        return path
    message = f"{binary} not installed ({INSTALL_HINTS.get(binary, 'see .ci/run')})"
    if os.environ.get("SINKDNS_REQUIRE_ALL"):
        pytest.fail(message + " and SINKDNS_REQUIRE_ALL is set")
    pytest.skip(message)


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop a server the tests started: SIGTERM, then SIGKILL if it does not exit in time."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
