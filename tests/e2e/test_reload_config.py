"""SIGHUP re-reads the config file: a broken file changes nothing, live keys change, restart keys wait."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from tests.e2e.test_workers import children
from tests.support.wait import until

pytestmark = pytest.mark.e2e

BLOCK = "192.0.2.80"
NEW_BLOCK = "192.0.2.81"
CONFIG = """\
[upstream]
servers = ["{upstream}"]
[policy]
zones = "{zones}"
block_ip = ["{block}"]
watch_interval = 0
"""


def write_config(path: Path, upstream: str, block: str = BLOCK) -> None:
    """Replace the file the way an editor or config management does: a new file renamed over the old."""
    tmp = path.with_suffix(".new")
    tmp.write_text(CONFIG.format(upstream=upstream, zones=path.parent / "zones", block=block))
    os.replace(tmp, path)


def address(server, name: str) -> str:
    response = dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=3)
    return response.answer[0][0].address if response.answer else ""


def every_answer(server, name: str, expected: str, queries: int = 20) -> bool:
    """True when `queries` queries, each from its own source port (so spread over the workers), get `expected`."""
    try:
        return all(address(server, name) == expected for _ in range(queries))
    except (dns.exception.Timeout, OSError):  # no worker on the port for a moment (a restart)
        return False


def log_lines(server, level: str) -> list[str]:
    return [line for line in server.log_file.read_text(errors="replace").splitlines() if f" level={level} " in line]


@pytest.fixture
def config(tmp_path, nsd) -> Path:
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "acme.txt").write_text("www.sinkdns.test\n")
    path = tmp_path / "sinkdns.toml"
    write_config(path, nsd.address)
    return path


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def server(request, config, start_sinkdns):
    server = start_sinkdns("--config", str(config), "--workers", str(request.param))
    assert every_answer(server, "www.sinkdns.test", BLOCK)
    assert address(server, "mail.sinkdns.test") == "192.0.2.25"
    return server


def test_a_broken_config_file_keeps_the_running_config_and_still_reloads_the_policy(server, config):
    config.write_text(config.read_text() + "[policy\nblock_ip = 1\n")
    (config.parent / "zones" / "late.txt").write_text("mail.sinkdns.test\n")
    server.signal(signal.SIGHUP)
    until(lambda: every_answer(server, "mail.sinkdns.test", BLOCK), 20, "every process to reload the zones")
    [error] = log_lines(server, "error")
    assert f"file={config}" in error and "not valid TOML" in error and "line 7" in error
    assert every_answer(server, "www.sinkdns.test", BLOCK)
    assert address(server, "short.sinkdns.test") == "192.0.2.60"  # forwarded, never asked before
    assert server.proc.poll() is None


def test_a_bad_value_is_one_error_naming_the_key(server, config):
    config.write_text(config.read_text().replace(BLOCK, "192.0.2.300"))
    server.signal(signal.SIGHUP)
    until(lambda: log_lines(server, "error"), 20, "the error line")
    [error] = log_lines(server, "error")
    assert f"file={config}" in error and "policy.block_ip: expected an IPv4 address" in error
    assert every_answer(server, "www.sinkdns.test", BLOCK)


def test_a_changed_policy_key_answers_at_once(server, config, nsd):
    write_config(config, nsd.address, NEW_BLOCK)
    server.signal(signal.SIGHUP)
    until(lambda: every_answer(server, "www.sinkdns.test", NEW_BLOCK), 20, "every process on the new block_ip")
    assert log_lines(server, "error") == [] and log_lines(server, "warning") == []
    assert any("applied=policy.block_ip" in line for line in log_lines(server, "info"))


def test_a_restart_key_is_one_warning_and_keeps_its_running_value(server, config):
    write_config(config, "127.0.0.1:9", NEW_BLOCK)  # the discard port: no upstream answers there
    server.signal(signal.SIGHUP)
    until(lambda: every_answer(server, "www.sinkdns.test", NEW_BLOCK), 20, "the live key of the same file applied")
    [warning] = log_lines(server, "warning")
    assert f"file={config}" in warning and "restart=upstream.servers applied=policy.block_ip" in warning
    assert address(server, "short.sinkdns.test") == "192.0.2.60"  # the old upstream, for a name never cached


def test_restarted_workers_run_the_accepted_config_not_later_edits(config, nsd, start_sinkdns):
    server = start_sinkdns("--config", str(config), "--workers", "2")
    write_config(config, nsd.address, NEW_BLOCK)
    server.signal(signal.SIGHUP)
    until(lambda: every_answer(server, "www.sinkdns.test", NEW_BLOCK), 20, "every worker on the new block_ip")
    write_config(config, nsd.address, "192.0.2.82")  # edited, never signalled: not in force
    old = children(server.proc.pid)
    for pid in old:  # both, so only restarted workers can answer
        os.kill(pid, signal.SIGKILL)
    until(lambda: len(set(children(server.proc.pid)) - set(old)) == 2, 20, "two new workers")
    until(lambda: every_answer(server, "www.sinkdns.test", NEW_BLOCK), 30, "the new workers on the accepted config")
