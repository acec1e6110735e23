"""The zones directory is watched: a new or deleted file takes effect without a signal."""

from __future__ import annotations

import dns.message
import dns.query
import pytest

from tests.support.wait import until

pytestmark = pytest.mark.e2e


def answer_of(server, name: str) -> str:
    response = dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=5)
    return response.answer[0][0].address if response.answer else ""


def test_new_and_deleted_files_take_effect(nsd, start_sinkdns, tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    config = tmp_path / "watch.toml"
    config.write_text("[policy]\nwatch_interval = 0.2\n")
    server = start_sinkdns("--config", str(config), "--upstream", nsd.address, "--zones", str(zones), "--block-ip", "192.0.2.80")
    assert answer_of(server, "www.sinkdns.test") == "192.0.2.10"
    (zones / "late.txt").write_text("sinkdns.test\n")
    until(lambda: answer_of(server, "www.sinkdns.test") == "192.0.2.80", 10, "the new file to block")
    (zones / "late.txt").unlink()
    until(lambda: answer_of(server, "www.sinkdns.test") == "192.0.2.10", 10, "the deleted file to stop blocking")
