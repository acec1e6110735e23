"""From DNS to the page: resolve a blocked name through sinkdns, open the address it gave, read the page."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

import dns.message
import dns.query
import pytest

from tests.support.process import ROOT, run_cli

pytestmark = pytest.mark.e2e

ZONES = str(ROOT / "zones")


@pytest.fixture
def server(nsd, start_sinkdns, tmp_path):
    config = tmp_path / "page.toml"
    config.write_text(
        '[blockpage]\noperator = "Example Hosting"\noperator_url = "https://hosting.example/"\n'
        'contact = "mailto:abuse@hosting.example"\n'
    )
    return start_sinkdns(
        "--config", str(config), "--upstream", nsd.address, "--zones", ZONES,
        "--block-page", "127.0.0.1:0", "--block-page-tls", "127.0.0.1:0",
    )


def resolve(server, name: str) -> str:
    response = dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=5)
    return response.answer[0][0].address


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def test_blocked_name_leads_to_the_page(server):
    address = resolve(server, "www.kiwifarms.net")
    conn = http.client.HTTPConnection(address, port_of(server.info["block_page"][0]), timeout=5)
    conn.request("GET", "/threads/anything?x=1", headers={"Host": "www.kiwifarms.net"})
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 451
    assert response.getheader("Link") == '<https://hosting.example/>; rel="blocked-by"'
    assert response.getheader("Cache-Control") == "no-store"
    assert "www.kiwifarms.net" in body and "Kiwi Farms" in body
    assert "imminent and emergency threat to human life" in body
    assert 'href="https://blog.cloudflare.com/kiwifarms-blocked/"' in body
    assert "Example Hosting" in body and "mailto:abuse@hosting.example" in body


def test_json_and_head(server):
    port = port_of(server.info["block_page"][0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/", headers={"Host": "kiwifarms.st", "Accept": "application/json"})
    response = conn.getresponse()
    facts = json.loads(response.read())
    assert response.status == 451 and facts["customer"] == "kiwifarms"
    assert facts["link"] == "https://blog.cloudflare.com/kiwifarms-blocked/"
    conn.request("HEAD", "/", headers={"Host": "kiwifarms.st"})
    head = conn.getresponse()
    assert head.status == 451 and head.read() == b""


def test_unblocked_host_gets_the_plain_page(server):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server.info["block_page"][0]), timeout=5)
    conn.request("GET", "/", headers={"Host": "www.sinkdns.test"})
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200 and "Kiwi Farms" not in body


def test_https_with_the_exported_ca(server):
    out = run_cli("ca", "export", "--state-dir", str(server.workdir / "state"))
    assert out.returncode == 0 and out.stdout.startswith("-----BEGIN CERTIFICATE-----")
    context = ssl.create_default_context(cadata=out.stdout)
    port = port_of(server.info["block_page_tls"][0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="www.kiwifarms.net") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: www.kiwifarms.net\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 451")
    assert "Kiwi Farms" in body and "https://blog.cloudflare.com/kiwifarms-blocked/" in body


def test_https_hostname_check_passes_for_the_blocked_name(server):
    ca = run_cli("ca", "export", "--state-dir", str(server.workdir / "state")).stdout
    context = ssl.create_default_context(cadata=ca)
    port = port_of(server.info["block_page_tls"][0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="kiwifarms.net") as tls:
            assert tls.getpeercert()["subjectAltName"] == (("DNS", "kiwifarms.net"),)


def test_unblocked_sni_is_refused(server):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = port_of(server.info["block_page_tls"][0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="www.sinkdns.test")
