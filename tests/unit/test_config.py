from __future__ import annotations

from pathlib import Path

import pytest

from sinkdns import config
from sinkdns.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sinkdns.toml"


def test_defaults():
    cfg = config.load(None)
    assert cfg.server.listen == (("127.0.0.1", 1053),)
    assert cfg.metrics.listen == ("127.0.0.1", 9153)
    assert cfg.blockpage.listen == (("127.0.0.1", 8080),)
    assert cfg.policy.block_ip == ("127.0.0.1",) and cfg.policy.zones == "./zones"
    assert cfg.server.workers == 1


def test_shipped_example_loads():
    cfg = config.load(str(EXAMPLE))
    assert cfg.upstream.servers == (("192.0.2.53", 53), ("2001:db8::53", 53))
    assert dict(cfg.upstream.conditional)["corp.example"] == (("10.0.0.53", 53),)


def test_flags_replace_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\nlisten = ["127.0.0.1:53"]\n[metrics]\nlisten = "127.0.0.1:1"\n')
    cfg = config.load(str(path), {"listen": ["[::1]:0"], "metrics": "off", "workers": "2"})
    assert cfg.server.listen == (("::1", 0),)
    assert cfg.metrics.listen is None
    assert cfg.server.workers == 2


@pytest.mark.parametrize(
    "text, ep",
    [("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5300", ("127.0.0.1", 5300)), ("::1", ("::1", 53)),
     ("[::1]:5300", ("::1", 5300)), ("[0:0::1]", ("::1", 53))],
)
def test_upstream_endpoints(text, ep):
    assert config.endpoint(text, default_port=53) == ep


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:99999", "[::1", "1.2.3.4:x", ""])
def test_bad_endpoints(text):
    with pytest.raises(ValueError):
        config.endpoint(text, default_port=53)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\nworkers = 0\nbogus = 1\n[cache]\nmax_ttl = -1\n')
    with pytest.raises(ConfigError) as err:
        config.load(str(path))
    text = str(err.value)
    assert "server.workers" in text and "server.bogus: unknown key" in text and "cache.max_ttl" in text
    assert len(err.value.problems) == 3


def test_resolv_conf_skips_our_own_address(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\noptions edns0\n")
    found = config.resolv_conf_upstreams((("127.0.0.1", 53), ("::1", 53)), str(resolv))
    assert found == (("192.0.2.1", 53), ("fe80::1", 53))
    assert config.resolv_conf_upstreams((("127.0.0.1", 1053),), str(resolv))[0] == ("127.0.0.1", 53)


@pytest.mark.parametrize("value, ok", [(0, True), (2, True), (0.5, True), (0.05, False), (-1, False)])
def test_watch_interval(tmp_path, value, ok):
    path = tmp_path / "c.toml"
    path.write_text(f"[policy]\nwatch_interval = {value}\n")
    if ok:
        assert config.load(str(path)).policy.watch_interval == value
    else:
        with pytest.raises(ConfigError, match="policy.watch_interval"):
            config.load(str(path))
