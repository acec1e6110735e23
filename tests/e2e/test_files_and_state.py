"""Files that fail under a running server: a query log on a full disk, zone files nobody can read.

The tests run as root, for whom permission bits stop nothing, so "unreadable" is played by directory
entries no read can succeed on: a FIFO (opening one without a writer would block for ever), a dangling
symlink and a symlink loop.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e.test_metrics import scrape, value
from tests.support.wait import until

pytestmark = pytest.mark.e2e

BLOCK = "192.0.2.99"


def addresses(server, name: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR
    return [rd.address for rrset in response.answer for rd in rrset]


def test_a_query_log_on_a_full_disk_fails_quietly_and_answers_go_on(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address, "--query-log", "/dev/full", "--metrics", "127.0.0.1:0")
    metrics = server.info["metrics"]
    for _ in range(5):
        assert addresses(server, "www.sinkdns.test") == ["192.0.2.10"]
    until(lambda: value(scrape(metrics), "sinkdns_query_log_lines_total", outcome="failed") == 5, 3,
          "five failed lines counted")
    assert addresses(server, "mail.sinkdns.test") == ["192.0.2.25"]
    until(lambda: value(scrape(metrics), "sinkdns_query_log_lines_total", outcome="failed") == 6, 3,
          "the sixth failed line counted")
    assert value(scrape(metrics), "sinkdns_query_log_lines_total", outcome="written") == 0
    warnings = [line for line in server.log().splitlines() if "query log cannot be written" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], warnings
    assert server.stop() == 0


def unreadable(zones: Path) -> dict[str, str]:
    """Make one entry of each unreadable kind in `zones`; their names, by kind."""
    os.mkfifo(zones / "pipe.txt")
    os.mkfifo(zones / "pipe.toml")
    os.mkfifo(zones / "pipe.rpz")
    (zones / "dangling.hosts").symlink_to(zones / "nowhere")
    (zones / "loop.txt").symlink_to(zones / "loop.txt")
    return {"pipe.txt": "not a regular file", "pipe.toml": "not a regular file", "pipe.rpz": "not a regular file",
            "dangling.hosts": "cannot read: No such file or directory", "loop.txt": "symlink loop"}


def test_unreadable_zone_files_at_start_up_leave_the_rest_of_the_policy(nsd, tmp_path, start_sinkdns):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "good.txt").write_text("www.sinkdns.test\n")
    problems = unreadable(zones)
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--block-ip", BLOCK,
                           "--metrics", "127.0.0.1:0")
    assert addresses(server, "www.sinkdns.test") == [BLOCK]
    assert addresses(server, "mail.sinkdns.test") == ["192.0.2.25"]
    metrics = scrape(server.info["metrics"])
    assert {zone: value(metrics, "sinkdns_policy_file_errors", zone=zone) for zone in [*problems, "good.txt"]} == {
        **{zone: 1 for zone in problems}, "good.txt": 0,
    }
    log = server.log()
    for zone, problem in problems.items():
        assert f"{zone}: {problem}" in log, zone


def test_a_zone_file_turned_into_a_fifo_keeps_its_last_good_version(nsd, tmp_path, start_sinkdns):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "good.txt").write_text("www.sinkdns.test\n")
    (zones / "later.txt").write_text("mail.sinkdns.test\n")
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), "--block-ip", BLOCK,
                           "--metrics", "127.0.0.1:0")
    metrics = server.info["metrics"]
    assert addresses(server, "mail.sinkdns.test") == [BLOCK]
    (zones / "later.txt").unlink()
    os.mkfifo(zones / "later.txt")
    server.signal(signal.SIGHUP)
    until(lambda: value(scrape(metrics), "sinkdns_policy_reloads_total", result="partial") >= 1, 10,
          "a partial reload")
    assert addresses(server, "mail.sinkdns.test") == [BLOCK]
    assert addresses(server, "www.sinkdns.test") == [BLOCK]
    assert value(scrape(metrics), "sinkdns_policy_file_errors", zone="later.txt") == 1
