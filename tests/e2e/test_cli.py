"""The command line as a user meets it: exit codes and one-line messages for what cannot work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import dns.message
import dns.query
import pytest

from sinkdns import __version__
from tests.support.process import ROOT, run_cli
from tests.support.wait import until

pytestmark = pytest.mark.e2e


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"sinkdns {__version__}"


@pytest.mark.parametrize(
    "toml, expected",
    [
        ("[server]\nlisten = [\"127.0.0.1:0\"]\nlistne = 1\n", "server.listne: unknown key"),
        ("[sever]\n", "unknown section [sever]"),
        ("[cache]\nsize = \"big\"\n", "cache.size: expected an integer"),
        ("[upstream]\nservers = [\"dns.example\"]\n", "upstream.servers: expected an IP address"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_naming_file_and_key(tmp_path, toml, expected):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    out = run_cli("serve", "--config", str(path), "--upstream", "127.0.0.1:9")
    assert out.returncode == 2
    assert expected in out.stderr
    assert str(path) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_flag_exits_2():
    out = run_cli("serve", "--listen", "localhost:53")
    assert out.returncode == 2
    assert "--listen" in out.stderr


def test_no_usable_upstream_refuses_to_start(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# nothing here\nsearch example\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[upstream]\nresolv_conf = "{resolv}"\n')
    out = run_cli("serve", "--config", str(config), "--listen", "127.0.0.1:0")
    assert out.returncode == 2
    assert "--upstream" in out.stderr


def test_port_in_use_exits_2():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        out = run_cli("serve", "--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:9", "--metrics", "off")
    assert out.returncode == 2
    assert f"127.0.0.1:{port}" in out.stderr
    assert "in use" in out.stderr


@pytest.mark.parametrize("flag", ["--metrics", "--block-page"])
def test_http_port_in_use_exits_2(flag):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        others = {"--metrics": "off", "--block-page": "127.0.0.1:0"}
        other = "--block-page" if flag == "--metrics" else "--metrics"
        out = run_cli("serve", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", flag, f"127.0.0.1:{port}",
                      other, others[other])
    assert out.returncode == 2
    assert f"127.0.0.1:{port}" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_ready_file_and_sigterm(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address)
    info = json.loads(server.ready_file.read_text())
    assert set(info) == {"dns", "metrics", "block_page", "block_page_tls"}
    assert len(info["block_page"]) == 1 and info["block_page_tls"] == []
    assert info["dns"] == [f"127.0.0.1:{server.port}"]
    assert "ready" in server.log()
    assert server.stop() == 0


def test_make_run_answers_dig(nsd, tmp_path):
    """`make run ARGS=...` from the README, on the repository's own venv."""
    ready = tmp_path / "ready.json"
    args = f"--listen 127.0.0.1:0 --upstream {nsd.address} --metrics off --ready-file {ready}"
    proc = subprocess.Popen(
        ["make", "-s", "run", f"ARGS={args}", f"PYTHON={sys.executable}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        until(lambda: ready.exists() or proc.poll() is not None, 120, "make run to start sinkdns")
        assert proc.poll() is None, proc.stdout.read().decode()
        host, _, port = json.loads(ready.read_text())["dns"][0].rpartition(":")
        response = dns.query.udp(dns.message.make_query("www.sinkdns.test", "A"), host, port=int(port), timeout=5)
        assert response.answer[0][0].address == "192.0.2.10"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
