"""Re-reading the config file: what is judged, what is logged, what changes in a running App."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import dns.message
import dns.rcode
import pytest

from sinkdns.app import App
from sinkdns.config import Config, PolicyConfig, UpstreamConfig, load
from sinkdns.errors import ConfigError
from sinkdns.policy.watch import ZonesWatcher
from sinkdns.reconfigure import LIVE_KEYS, ConfigFile, apply, changed_keys, merge, received, reread
from tests.unit.util import request

START = """\
[server]
listen = ["127.0.0.1:5353"]
[upstream]
servers = ["192.0.2.1"]
[policy]
zones = "{zones}"
block_ip = ["192.0.2.80"]
"""


@pytest.fixture(autouse=True)
def root_level():
    """apply() sets the process's log level; give the suite its own back."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture
def setup(tmp_path):
    """A config file, the config it gives, and the zones directory it names (blocking blocked.example)."""
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "acme.txt").write_text("blocked.example\n")
    path = tmp_path / "sinkdns.toml"
    path.write_text(START.format(zones=zones))
    file = ConfigFile(str(path), {})
    return file, file.parse(path.read_bytes()), path


def errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sinkdns.config" and r.levelno >= logging.WARNING]


def test_merge_takes_live_keys_and_keeps_the_others():
    running = Config()
    wanted = replace(Config(), policy=PolicyConfig(block_ip=("192.0.2.9",), watch_interval=0),
                     upstream=UpstreamConfig(servers=(("192.0.2.53", 53),)))
    merged = merge(running, wanted)
    assert merged.policy.block_ip == ("192.0.2.9",)
    assert merged.policy.watch_interval == running.policy.watch_interval
    assert merged.upstream == running.upstream
    assert changed_keys(running, wanted) == ["upstream.servers", "policy.block_ip", "policy.watch_interval"]
    assert changed_keys(running, merged) == ["policy.block_ip"]


def test_every_live_key_exists():
    assert LIVE_KEYS <= {f"{s}.{k}" for s, section in vars(Config()).items() for k in vars(section)}


@pytest.mark.parametrize("text, named", [
    ("[policy\nblock_ip = 1\n", "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 8)"),
    ('[policy]\nblock_ip = ["not an address"]\n', "policy.block_ip: expected an IPv4 address"),
    ("[policy]\nbogus = 1\n", "policy.bogus: unknown key"),
])
def test_an_unusable_file_is_one_error_naming_file_and_place(setup, caplog, text, named):
    file, running, path = setup
    path.write_text(text)
    with caplog.at_level(logging.INFO, "sinkdns.config"):
        assert reread(file, running) is None
    [record] = errors(caplog)
    assert record.levelno == logging.ERROR and record.file == str(path)
    assert record.error.startswith(f"{path}: ") and named in record.error


def test_a_file_that_is_gone_or_not_utf8_is_an_error(setup, caplog):
    file, running, path = setup
    path.write_bytes(b"[policy]\nblock_ip = ['\xff']\n")
    with caplog.at_level(logging.INFO, "sinkdns.config"):
        assert reread(file, running) is None
        path.unlink()
        assert reread(file, running) is None
    assert [r.error for r in errors(caplog)] == [
        f"{path}: not UTF-8 text (byte 22)", f"{path}: cannot read: No such file or directory"]


def test_restart_keys_are_one_warning_and_keep_their_values(setup, caplog):
    file, running, path = setup
    changed = path.read_text().replace("5353", "5354").replace("192.0.2.80", "192.0.2.81")
    path.write_text(changed + "[cache]\nsize = 5\n")
    with caplog.at_level(logging.INFO, "sinkdns.config"):
        config, data = reread(file, running)
    [record] = errors(caplog)
    assert record.levelno == logging.WARNING and record.restart == "server.listen,cache.size"
    assert record.applied == "policy.block_ip"
    assert data == path.read_bytes()
    assert config.server.listen == running.server.listen and config.cache == running.cache
    assert config.policy.block_ip == ("192.0.2.81",)


def test_live_keys_only_log_one_info_line(setup, caplog):
    file, running, path = setup
    path.write_text(path.read_text() + "[access]\ndeny = ['10.0.0.0/8']\n")
    with caplog.at_level(logging.INFO, "sinkdns.config"):
        config, _ = reread(file, running)
    assert [(r.levelname, r.getMessage(), r.applied) for r in caplog.records] == [
        ("INFO", "config reloaded", "access.deny")]
    assert config.access.deny == ("10.0.0.0/8",)


def test_received_bytes_are_judged_again_and_logged_only_if_they_fail(setup, caplog):
    file, running, path = setup
    with caplog.at_level(logging.INFO, "sinkdns.config"):
        config = received(file, running, path.read_bytes().replace(b"192.0.2.80", b"192.0.2.82"))
        assert received(file, running, b"[policy\n") is None
    assert config.policy.block_ip == ("192.0.2.82",)
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def answer(app: App, name: str, rdtype: str = "A", rdclass: str = "IN") -> dns.message.Message:
    res = app.chain(request(name, rdtype, rdclass=rdclass))
    return dns.message.from_wire(res.wire)


def addresses(app: App, name: str) -> list[str]:
    return [rd.address for rrset in answer(app, name).answer for rd in rrset]


def test_apply_swaps_live_settings_into_a_running_app(setup, tmp_path):
    file, running, path = setup
    app = App(running)
    assert addresses(app, "blocked.example") == ["192.0.2.80"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "beta.txt").write_text("other.example\n")
    path.write_text(f"""\
[server]
listen = ["127.0.0.1:5353"]
log_level = "warning"
chaos = {{"version.bind" = "sinkdns"}}
[upstream]
servers = ["192.0.2.1"]
[policy]
zones = "{other}"
block_ip = ["192.0.2.81"]
ttl = 7
[ratelimit]
qps = 5
""")
    app.limiter.slipped = 3
    watcher = ZonesWatcher(running.policy.zones, lambda: asyncio.sleep(0))
    config, _ = reread(file, app.config)
    apply(app, config, watcher)
    assert app.config is config
    assert addresses(app, "blocked.example") == ["192.0.2.81"]  # new answers at once, old index until the reload
    asyncio.run(app.policy.reload())
    assert app.policy().match_name("blocked.example", 0) is None  # not in the new directory
    response = answer(app, "other.example")
    assert [(rd.address, rrset.ttl) for rrset in response.answer for rd in rrset] == [("192.0.2.81", 7)]
    assert app.policy.zones_dir == watcher.zones_dir == str(other)
    assert answer(app, "version.bind", "TXT", "CH").answer[0][0].strings == (b"sinkdns",)
    assert app.limiter is app.guard.limiter and app.limiter.qps == 5 and app.limiter.slipped == 3
    assert logging.getLogger().level == logging.WARNING


def test_apply_keeps_the_rate_limiter_when_its_section_is_unchanged(setup):
    file, running, path = setup
    app = App(running)
    limiter, access = app.limiter, app.guard.access
    path.write_text(path.read_text() + "[access]\ndeny = ['127.0.0.0/8']\n")
    apply(app, reread(file, app.config)[0], None)
    assert app.limiter is limiter and app.guard.limiter is limiter
    assert app.guard.access is not access
    assert answer(app, "blocked.example").rcode() == dns.rcode.REFUSED


def test_a_file_that_is_not_utf8_is_a_config_error_at_start_up_too(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(str(path))
