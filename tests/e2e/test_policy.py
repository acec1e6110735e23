"""The policy engine end to end: the real sinkdns process, the shipped zones/ and small policy dirs, a real
upstream (nsd) or a fake one for answers a real server will not give, queried with dnspython, raw sockets
and dig. Every assertion is on the wire: rcodes, records, TTLs, SOA owners, EDE codes and texts.
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import struct
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dnslib
import pytest

from tests.support.fake_upstream import FakeUpstream, answer
from tests.support.process import ROOT, Sinkdns
from tests.support.system import require
from tests.support.wait import until

pytestmark = pytest.mark.e2e

SHIPPED = ROOT / "zones"
BLOCK4 = ("192.0.2.80", "192.0.2.81")
BLOCK6 = ("2001:db8::80",)
BLOCK_FLAGS = ("--block-ip", BLOCK4[0], "--block-ip", BLOCK4[1], "--block-ipv6", BLOCK6[0])
KIWI_LINK = "https://blog.cloudflare.com/kiwifarms-blocked/"
KIWI_REASON = "Blocked by its infrastructure provider over an imminent and emergency threat to human life."
FAKE_A = "192.0.2.200"  # the fake upstream's answer for any name it has no table entry for
FAKE_AAAA = "2001:db8::200"

# What the fake upstream answers, per name, whatever the type asked (the tests ask A unless noted).
FAKE_TABLE = {
    "alias.fake.test": ["alias.fake.test. 300 IN CNAME www.kiwifarms.net.", "www.kiwifarms.net. 300 IN A 203.0.113.7"],
    "hop.fake.test": [
        "hop.fake.test. 300 IN CNAME two.fake.test.",
        "two.fake.test. 300 IN CNAME kiwifarms.st.",
        "kiwifarms.st. 300 IN A 203.0.113.8",
    ],
    "upper.fake.test": ["upper.fake.test. 300 IN CNAME WWW.KiwiFarms.NET.", "WWW.KiwiFarms.NET. 300 IN A 203.0.113.9"],
    "clean.fake.test": ["clean.fake.test. 300 IN CNAME cdn.fake.test.", "cdn.fake.test. 300 IN A 203.0.113.20"],
    "later.fake.test": ["later.fake.test. 300 IN CNAME target.fake.test.", "target.fake.test. 300 IN A 203.0.113.21"],
    "ipbad.fake.test": ["ipbad.fake.test. 300 IN A 198.51.100.66"],
    "ipgood.fake.test": ["ipgood.fake.test. 300 IN A 198.51.100.67"],
    "ipchain.fake.test": ["ipchain.fake.test. 300 IN CNAME cdn.other.test.", "cdn.other.test. 300 IN A 198.51.100.66"],
    "iprange.fake.test": ["iprange.fake.test. 300 IN A 198.19.3.4"],
    "ip6bad.fake.test": ["ip6bad.fake.test. 300 IN AAAA 2001:db8:bad::5"],
    "via.allowed.prec.test": [
        "via.allowed.prec.test. 300 IN CNAME y.nested.prec.test.", "y.nested.prec.test. 300 IN A 203.0.113.30"],
    "via.other.prec.test": [
        "via.other.prec.test. 300 IN CNAME y.nested.prec.test.", "y.nested.prec.test. 300 IN A 203.0.113.30"],
}


def table_handler(query: dnslib.DNSRecord, transport: str) -> list:
    name = str(query.q.qname).rstrip(".").lower()
    if name in FAKE_TABLE:
        return [answer(query, *FAKE_TABLE[name])]
    if query.q.qtype == dnslib.QTYPE.A:
        return [answer(query, f"{name}. 300 IN A {FAKE_A}")]
    if query.q.qtype == dnslib.QTYPE.AAAA:
        return [answer(query, f"{name}. 300 IN AAAA {FAKE_AAAA}")]
    return [answer(query, f"{name}. 300 IN SOA ns.{name}. hostmaster.{name}. 1 3600 600 86400 300")]


@pytest.fixture
def fake():
    with FakeUpstream(table_handler) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def module_fake():
    with FakeUpstream(table_handler) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """Start sinkdns once for a module's worth of read-only tests (each start costs about 0.4 s)."""
    started: list[Sinkdns] = []

    def start(*args: str) -> Sinkdns:
        server = Sinkdns(tmp_path_factory.mktemp("sinkdns"), *args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# Shared pieces

def zones_dir(tmp_path: Path, files: dict[str, str], name: str = "zones") -> Path:
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    for file, text in files.items():
        (path / file).write_text(textwrap.dedent(text).lstrip())
    return path


def rpz(body: str) -> str:
    """An RPZ file with the usual head; owners in `body` are relative to rpz.local."""
    return "$TTL 60\n$ORIGIN rpz.local.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\n" + textwrap.dedent(body)


def ask(server, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 5, **kwargs) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)
    send = dns.query.tcp if tcp else dns.query.udp
    response = send(query, server.host, port=server.port, timeout=timeout)
    assert response.id == query.id
    return response


def sde_query_options() -> list:
    return [dns.edns.GenericOption(dns.edns.OptionType.EDE, b"")]  # the empty EDE option: "send me SDE"


def edes(response: dns.message.Message) -> list[tuple[int, str | None]]:
    found = []
    for option in response.options:
        if option.otype == dns.edns.OptionType.EDE:
            assert isinstance(option, dns.edns.EDEOption)
            found.append((int(option.code), option.text))
    return found


def addresses(response: dns.message.Message) -> list[str]:
    return [rd.address for rrset in response.answer if rrset.rdtype in (1, 28) for rd in rrset]


def assert_block(response, qname: str, rdtype: str = "A", values=BLOCK4, ttl: int = 60) -> None:
    """The block-page answer: exactly one RRset of the question's owner with the block addresses."""
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    assert not response.flags & dns.flags.AD
    assert response.flags & dns.flags.RA
    assert len(response.answer) == 1, response.answer
    rrset = response.answer[0]
    assert rrset.name == dns.name.from_text(qname)
    assert rrset.rdtype == dns.rdatatype.from_text(rdtype)
    assert rrset.ttl == ttl
    assert [rd.address for rd in rrset] == list(values)
    assert response.authority == []


def assert_negative(response, rcode: int, soa_owner: str, ttl: int = 60) -> None:
    """NXDOMAIN or NODATA with the synthesized SOA: owner the matched rule's name, TTL = MINIMUM = block TTL."""
    assert response.rcode() == rcode, dns.rcode.to_text(response.rcode())
    assert not response.flags & dns.flags.AD
    assert response.answer == []
    assert len(response.authority) == 1
    rrset = response.authority[0]
    assert rrset.rdtype == dns.rdatatype.SOA
    owner = dns.name.from_text(soa_owner)
    assert rrset.name == owner
    assert rrset.ttl == ttl
    soa = rrset[0]
    assert soa.mname == owner
    assert soa.rname == dns.name.from_text("hostmaster", owner)
    assert soa.minimum == ttl


def assert_forwarded(response, values, ttl_max: int = 300) -> None:
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == list(values)
    assert all(0 < rrset.ttl <= ttl_max for rrset in response.answer)
    assert edes(response) == []


def dig(server, *args: str) -> str:
    binary = require("dig")
    out = subprocess.run(
        [binary, f"@{server.host}", "-p", str(server.port), "+time=3", "+tries=1", *args],
        capture_output=True, text=True, timeout=20,
    )
    return out.stdout


def kiwi_ede(rule: str = "kiwifarms.net") -> tuple[int, str]:
    return (15, f"kiwifarms: {rule}; {KIWI_LINK}")


# --- the shipped example: Kiwi Farms ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped(nsd, module_server):
    """The shipped zones/ with nsd upstream; tests using it only read."""
    return module_server("--upstream", nsd.address, "--zones", str(SHIPPED), *BLOCK_FLAGS)


@pytest.fixture(scope="module")
def shipped_fake(module_fake, module_server):
    """The shipped zones/ with the fake upstream (names under .example and fake.test); tests only read."""
    return module_server("--upstream", module_fake.address, "--zones", str(SHIPPED), *BLOCK_FLAGS)


@pytest.mark.parametrize(
    "qname, rule",
    [
        ("kiwifarms.net", "kiwifarms.net"),
        ("www.kiwifarms.net", "kiwifarms.net"),
        ("a.b.kiwifarms.st", "kiwifarms.st"),
        ("KiwiFarms.NET", "kiwifarms.net"),
    ],
)
def test_kiwifarms_and_its_subdomains_get_the_block_page_for_every_type(shipped, qname, rule):
    for with_edns in (False, True):
        edns = 0 if with_edns else False
        expected_ede = [kiwi_ede(rule)] if with_edns else []
        a = ask(shipped, qname, "A", use_edns=edns)
        assert_block(a, qname)
        assert a.question[0].name.to_text() == qname + "."  # the question comes back as sent
        assert edes(a) == expected_ede
        aaaa = ask(shipped, qname, "AAAA", use_edns=edns)
        assert_block(aaaa, qname, "AAAA", BLOCK6)
        assert edes(aaaa) == expected_ede
        for rdtype in ("MX", "HTTPS", "SVCB", "TXT", "CNAME"):
            response = ask(shipped, qname, rdtype, use_edns=edns)
            assert_negative(response, dns.rcode.NOERROR, rule)  # NODATA: no HTTPS record past the block page
            assert edes(response) == expected_ede, rdtype
        any_ = ask(shipped, qname, "ANY", use_edns=edns)
        assert_block(any_, qname)  # RFC 8482 minimal: the block A records only
        assert edes(any_) == expected_ede


def test_type_65_by_number_is_nodata(shipped):
    response = ask(shipped, "www.kiwifarms.net", dns.rdatatype.RdataType.make(65), use_edns=0)
    assert_negative(response, dns.rcode.NOERROR, "kiwifarms.net")
    assert edes(response) == [kiwi_ede()]


def test_names_beside_the_blocked_ones_are_forwarded(shipped):
    assert_forwarded(ask(shipped, "www.sinkdns.test", use_edns=0), ["192.0.2.10"])
    # Not a suffix match on the string: notkiwifarms.net is another name (nsd refuses it: not its zone).
    response = ask(shipped, "notkiwifarms.net", use_edns=0)
    assert response.rcode() != dns.rcode.NOERROR or addresses(response) != list(BLOCK4)
    assert edes(response) == []


def test_block_answer_clears_ad_and_ignores_do(shipped):
    query = dns.message.make_query("kiwifarms.net", "A", want_dnssec=True)
    query.flags |= dns.flags.AD | dns.flags.CD
    response = dns.query.udp(query, shipped.host, port=shipped.port, timeout=5)
    assert_block(response, "kiwifarms.net")
    assert not response.flags & dns.flags.AD
    assert not response.ednsflags & dns.flags.DO
    assert all(rrset.rdtype != dns.rdatatype.RRSIG for rrset in response.answer + response.authority)


def test_default_block_ip_and_no_ipv6_gives_nodata(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(SHIPPED))
    assert_block(ask(server, "kiwifarms.net"), "kiwifarms.net", values=("127.0.0.1",))
    aaaa = ask(server, "www.kiwifarms.net", "AAAA", use_edns=0)
    assert_negative(aaaa, dns.rcode.NOERROR, "kiwifarms.net")
    assert edes(aaaa) == [kiwi_ede()]


def test_block_ip_flags_single_addresses(nsd, start_sinkdns):
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(SHIPPED),
                           "--block-ip", "198.51.100.9", "--block-ipv6", "2001:db8::9")
    assert_block(ask(server, "kiwifarms.st"), "kiwifarms.st", values=("198.51.100.9",))
    assert_block(ask(server, "kiwifarms.st", "AAAA"), "kiwifarms.st", "AAAA", ("2001:db8::9",))


# --- EDE and Structured DNS Errors ---------------------------------------------------------------------

def test_ede_and_sde_as_dnspython_sees_them(fake, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"acme.toml": """
        name = "Acme Hosting Ltd"
        reason = "Hosts a botnet controller."
        link = "https://example.com/acme-post"
        contact = "mailto:abuse@example.com"
        ede = 16
        ttl = 120
        domains = ["acme.test"]
        """})
    server = start_sinkdns("--upstream", fake.address, "--zones", str(zones), *BLOCK_FLAGS)
    plain = ask(server, "shop.acme.test", use_edns=0)
    assert_block(plain, "shop.acme.test", ttl=120)
    assert edes(plain) == [(16, "acme: acme.test; https://example.com/acme-post")]
    assert plain.edns == 0 and plain.payload == 1232

    structured = ask(server, "shop.acme.test", use_edns=0, options=sde_query_options())
    assert_block(structured, "shop.acme.test", ttl=120)
    [(code, text)] = edes(structured)
    assert code == 16
    assert len(text.encode()) <= 200
    assert json.loads(text) == {
        "j": "Hosts a botnet controller. https://example.com/acme-post",
        "c": ["mailto:abuse@example.com"],
        "o": "sinkdns",
    }

    nodata = ask(server, "acme.test", "MX", use_edns=0, options=sde_query_options())
    assert_negative(nodata, dns.rcode.NOERROR, "acme.test", ttl=120)
    assert json.loads(edes(nodata)[0][1])["c"] == ["mailto:abuse@example.com"]

    # No EDNS in the query: no OPT, so no EDE, in the answer; the answer itself is the same.
    bare = ask(server, "shop.acme.test", use_edns=False)
    assert_block(bare, "shop.acme.test", ttl=120)
    assert bare.edns == -1 and len(bare.options) == 0

    # A forwarded answer carries no EDE, even when the client asked for SDE.
    free = ask(server, "free.test", use_edns=0, options=sde_query_options())
    assert_forwarded(free, [FAKE_A])


def test_long_reasons_and_links_stay_within_200_bytes(fake, tmp_path, start_sinkdns):
    link = "https://example.com/" + "p" * 240
    zones = zones_dir(tmp_path, {
        "verbose.toml": f"""
            reason = "{'Very long reason. ' * 20}"
            link = "https://example.com/why"
            contact = "mailto:abuse@example.com"
            domains = ["verbose.test"]
            """,
        "longlink.toml": f"""
            link = "{link}"
            domains = ["longlink.test"]
            """,
    })
    server = start_sinkdns("--upstream", fake.address, "--zones", str(zones), *BLOCK_FLAGS)
    [(code, text)] = edes(ask(server, "verbose.test", use_edns=0, options=sde_query_options()))
    assert code == 15
    assert len(text.encode()) <= 200
    doc = json.loads(text)  # shortened, never cut mid-JSON
    assert doc["j"].startswith("Very long reason. Very long reason.")
    assert doc["j"].endswith("… https://example.com/why")
    [(code, text)] = edes(ask(server, "longlink.test", use_edns=0))
    full = f"longlink: longlink.test; {link}"
    assert code == 15
    assert len(text.encode()) == 200 and full.startswith(text)


def test_ede_and_sde_as_dig_shows_them(shipped):
    out = dig(shipped, "www.kiwifarms.net", "A")
    assert "status: NOERROR" in out
    assert f"; EDE: 15 (Blocked): (kiwifarms: kiwifarms.net; {KIWI_LINK})" in out
    assert re.search(r"^www\.kiwifarms\.net\.\s+60\s+IN\s+A\s+192\.0\.2\.80$", out, re.M)
    assert re.search(r"^www\.kiwifarms\.net\.\s+60\s+IN\s+A\s+192\.0\.2\.81$", out, re.M)

    sde = dig(shipped, "www.kiwifarms.net", "A", "+ednsopt=15")
    line = re.search(r"^; EDE: 15 \(Blocked\): \((.*)\)$", sde, re.M)
    assert line, sde
    assert json.loads(line.group(1)) == {"o": "sinkdns", "j": f"{KIWI_REASON} {KIWI_LINK}"}

    mx = dig(shipped, "kiwifarms.st", "MX")
    assert "ANSWER: 0, AUTHORITY: 1" in mx
    soa = r"^kiwifarms\.st\.\s+60\s+IN\s+SOA\s+kiwifarms\.st\. hostmaster\.kiwifarms\.st\. 1 3600 600 86400 60$"
    assert re.search(soa, mx, re.M)
    assert "; EDE: 15 (Blocked): (kiwifarms: kiwifarms.st; " in mx

    bare = dig(shipped, "www.kiwifarms.net", "A", "+noedns")
    assert "EDE" not in bare and "OPT PSEUDOSECTION" not in bare
    assert dig(shipped, "www.kiwifarms.net", "+short").split() == list(BLOCK4)


# --- the other shipped formats -----------------------------------------------------------------------

HOSTS_EDE = "example-hosts: {}"
RPZ_EDE = "example-rpz: {}"


@pytest.mark.parametrize(
    "qname, rdtype, expect",
    [
        # hosts file: every name on a line, and the names under it
        ("ads.example", "A", ("block", (15, "example-hosts: ads.example"))),
        ("x.pixel.example", "A", ("block", (15, "example-hosts: pixel.example"))),
        ("metrics.example.net", "AAAA", ("block6", (15, "example-hosts: metrics.example.net"))),
        ("localhost.example", "A", ("forward",)),
        # domain list (sniffed): `*.name` is the same as `name`; IDN as A-labels
        ("malware.example", "A", ("block", (15, "example-domains: malware.example"))),
        ("phishing.example", "A", ("block", (15, "example-domains: phishing.example"))),
        ("login.phishing.example", "A", ("block", (15, "example-domains: phishing.example"))),
        ("xn--bcher-kva.example", "A", ("block", (15, "example-domains: xn--bcher-kva.example"))),
        # adblock: ||name^ blocks, @@ allows the name and below
        ("adserver.example", "A", ("block", (15, "example-adblock: adserver.example"))),
        ("x.analytics.example", "A", ("block", (15, "example-adblock: analytics.example"))),
        ("good.adserver.example", "A", ("forward",)),
        ("x.good.adserver.example", "A", ("forward",)),
        # dnsmasq with action = "nxdomain" in its TOML
        ("popup.example", "A", ("nxdomain", "popup.example", 60, (15, "example-dnsmasq: popup.example"))),
        ("a.clicks.example", "AAAA", ("nxdomain", "clicks.example", 60, (15, "example-dnsmasq: clicks.example"))),
        ("spyware.example", "MX", ("nxdomain", "spyware.example", 60, (15, "example-dnsmasq: spyware.example"))),
        # RPZ: exact and wildcard triggers, passthru, NODATA, $GENERATE, local data, rpz-ip; EDE 17, TTL 300
        ("nxdomain.example", "A", ("nxdomain", "nxdomain.example", 300, (17, "example-rpz: nxdomain.example"))),
        ("a.b.nxdomain.example", "A", ("nxdomain", "nxdomain.example", 300, (17, "example-rpz: *.nxdomain.example"))),
        ("ok.nxdomain.example", "A", ("forward",)),
        ("nodata.example", "A", ("nodata", "nodata.example", 300, (17, "example-rpz: nodata.example"))),
        ("sub.nodata.example", "A", ("forward",)),  # an exact trigger does not cover the names under it
        ("gen2.example", "TXT", ("nxdomain", "gen2.example", 300, (17, "example-rpz: gen2.example"))),
        ("gen4.example", "A", ("forward",)),
        ("ipbad.fake.test", "A", ("nxdomain", "ipbad.fake.test", 300, (17, "example-rpz: 198.51.100.66/32"))),
        ("ipgood.fake.test", "A", ("forward", "198.51.100.67")),
    ],
)
def test_shipped_examples(shipped_fake, qname, rdtype, expect):
    server = shipped_fake
    response = ask(server, qname, rdtype, use_edns=0)
    kind = expect[0]
    if kind == "block":
        assert_block(response, qname)
        assert edes(response) == [expect[1]]
    elif kind == "block6":
        assert_block(response, qname, "AAAA", BLOCK6)
        assert edes(response) == [expect[1]]
    elif kind in ("nxdomain", "nodata"):
        _, owner, ttl, ede = expect
        assert_negative(response, dns.rcode.NXDOMAIN if kind == "nxdomain" else dns.rcode.NOERROR, owner, ttl)
        assert edes(response) == [ede]
    else:
        assert_forwarded(response, [expect[1] if len(expect) > 1 else (FAKE_AAAA if rdtype == "AAAA" else FAKE_A)])


def test_shipped_rpz_local_data(shipped_fake, module_fake):
    server = shipped_fake
    a = ask(server, "garden.example", use_edns=0)
    assert a.rcode() == dns.rcode.NOERROR
    assert [(r.name.to_text(), r.ttl, r.rdtype) for r in a.answer] == [("garden.example.", 300, dns.rdatatype.A)]
    assert addresses(a) == ["192.0.2.10"]
    assert edes(a) == [(17, "example-rpz: garden.example")]
    assert addresses(ask(server, "garden.example", "AAAA")) == ["2001:db8::10"]
    txt = ask(server, "garden.example", "TXT")
    assert [rd.to_text() for rd in txt.answer[0]] == ['"blocked by the operator"']
    mx = ask(server, "garden.example", "MX", use_edns=0)
    assert_negative(mx, dns.rcode.NOERROR, "garden.example", 300)
    cname = ask(server, "walled.example", use_edns=0)
    assert cname.answer[0].rdtype == dns.rdatatype.CNAME
    assert cname.answer[0][0].target == dns.name.from_text("garden.example")
    assert edes(cname) == [(17, "example-rpz: walled.example")]
    assert not [q for q in module_fake.queries if q[0] in ("garden.example", "walled.example")]  # never leaves


# --- actions in small policy dirs --------------------------------------------------------------------

def test_nxdomain_and_nodata_actions_from_lists_carry_soa(fake, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {
        "nx.txt": "nx.test\n",
        "nx.toml": 'action = "nxdomain"\nttl = 30\n',
        "nd.hosts": "0.0.0.0 nd.test\n",
        "nd.toml": 'action = "nodata"\nede = 17\n',
    })
    server = start_sinkdns("--upstream", fake.address, "--zones", str(zones), *BLOCK_FLAGS)
    for rdtype in ("A", "AAAA", "HTTPS", "ANY"):
        nx = ask(server, "deep.sub.nx.test", rdtype, use_edns=0)
        assert_negative(nx, dns.rcode.NXDOMAIN, "nx.test", ttl=30)
        assert edes(nx) == [(15, "nx: nx.test")]
        nd = ask(server, "nd.test", rdtype, use_edns=0)
        assert_negative(nd, dns.rcode.NOERROR, "nd.test")
        assert edes(nd) == [(17, "nd: nd.test")]
    assert fake.queries == []


# --- precedence ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def precedence(module_fake, tmp_path_factory, module_server):
    zones = zones_dir(tmp_path_factory.mktemp("precedence"), {
        "a-block.txt": "tie.prec.test\nnested.prec.test\n",
        "b-allow.toml": 'action = "allow"\ndomains = ["tie.prec.test", "ok.nested.prec.test"]\n',
        "c-allow.toml": 'action = "allow"\ndomains = ["allowed.prec.test"]\n',
        "d-block.txt": "ads.allowed.prec.test\nx.deep.prec.test\n",
        "e-nx.toml": 'action = "nxdomain"\ndomains = ["deep.prec.test", "first.prec.test"]\n',
        "f-block.txt": "first.prec.test\n",
        "g-adblock.txt": "||tie2.prec.test^\n@@||tie2.prec.test^\n",
    })
    return module_server("--upstream", module_fake.address, "--zones", str(zones), *BLOCK_FLAGS)


@pytest.mark.parametrize(
    "qname, expect",
    [
        ("tie.prec.test", "forward"),  # equal specificity: the allow (b) beats the block (a) that sorts first
        ("sub.tie.prec.test", "forward"),
        ("tie2.prec.test", "forward"),  # the same inside one adblock file
        ("nested.prec.test", "block"),
        ("y.nested.prec.test", "block"),
        ("ok.nested.prec.test", "forward"),  # the more specific allow wins
        ("z.ok.nested.prec.test", "forward"),
        ("allowed.prec.test", "forward"),
        ("ads.allowed.prec.test", "block"),  # the more specific block beats the less specific allow
        ("deep.prec.test", "nxdomain:deep.prec.test"),
        ("y.deep.prec.test", "nxdomain:deep.prec.test"),
        ("x.deep.prec.test", "block"),  # more specific, though its file sorts later
        ("first.prec.test", "nxdomain:first.prec.test"),  # equal blocks: the file that sorts first
        ("via.allowed.prec.test", "forward-cname"),  # an allow ends policy: no deep CNAME check
        ("via.other.prec.test", "block"),  # its CNAME target is blocked
    ],
)
def test_precedence(precedence, qname, expect):
    response = ask(precedence, qname, use_edns=0)
    if expect == "block":
        assert_block(response, qname)
        assert len(edes(response)) == 1
    elif expect == "forward":
        assert_forwarded(response, [FAKE_A])
    elif expect == "forward-cname":
        assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
        assert_forwarded(response, ["203.0.113.30"])
    else:
        assert_negative(response, dns.rcode.NXDOMAIN, expect.split(":")[1])
        assert edes(response) == [(15, f"e-nx: {expect.split(':')[1]}")]


# --- deep CNAME inspection ----------------------------------------------------------------------------

def test_cname_chain_to_a_blocked_name_gets_the_block_answer(fake, start_sinkdns):
    server = start_sinkdns("--upstream", fake.address, "--zones", str(SHIPPED), *BLOCK_FLAGS)
    for attempt in ("forwarded", "cached"):
        a = ask(server, "alias.fake.test", use_edns=0)
        assert_block(a, "alias.fake.test")  # no CNAME record leaks the blocked name's real address
        assert edes(a) == [kiwi_ede("kiwifarms.net")], attempt
    assert fake.queries.count(("alias.fake.test", "A", "udp")) == 1  # the second answer came from the cache
    hop = ask(server, "hop.fake.test", use_edns=0)  # two hops to kiwifarms.st
    assert_block(hop, "hop.fake.test")
    assert edes(hop) == [kiwi_ede("kiwifarms.st")]
    upper = ask(server, "upper.fake.test", use_edns=0)  # the target's letter case does not matter
    assert_block(upper, "upper.fake.test")
    assert edes(upper) == [kiwi_ede("kiwifarms.net")]
    mx = ask(server, "hop.fake.test", "MX", use_edns=0)
    assert_negative(mx, dns.rcode.NOERROR, "hop.fake.test")  # the SOA is owned by the question
    clean = ask(server, "clean.fake.test", use_edns=0)
    assert [rrset.rdtype for rrset in clean.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert_forwarded(clean, ["203.0.113.20"])


def test_cached_cname_is_judged_again_after_a_reload(fake, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"base.txt": "unrelated.test\n"})
    server = start_sinkdns("--upstream", fake.address, "--zones", str(zones), *BLOCK_FLAGS)
    first = ask(server, "later.fake.test", use_edns=0)
    assert_forwarded(first, ["203.0.113.21"])
    (zones / "late.txt").write_text("target.fake.test\n")
    server.signal(signal.SIGHUP)
    blocked = until(lambda: (r := ask(server, "later.fake.test", use_edns=0)) and r.answer
                    and addresses(r) == list(BLOCK4) and r, 10, "the cached CNAME to be blocked after SIGHUP")
    assert_block(blocked, "later.fake.test")
    assert edes(blocked) == [(15, "late: target.fake.test")]
    assert fake.queries.count(("later.fake.test", "A", "udp")) == 1  # every later answer came from the cache


# --- response-IP and client-IP triggers ---------------------------------------------------------------

def test_rpz_ip_triggers_on_forwarded_addresses(fake, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"ipz.rpz": rpz("""
        32.66.100.51.198.rpz-ip   CNAME .
        15.0.0.18.198.rpz-ip      CNAME *.
        48.zz.bad.db8.2001.rpz-ip CNAME .
        """)})
    server = start_sinkdns("--upstream", fake.address, "--zones", str(zones), *BLOCK_FLAGS)
    bad = ask(server, "ipbad.fake.test", use_edns=0)
    assert_negative(bad, dns.rcode.NXDOMAIN, "ipbad.fake.test")
    assert edes(bad) == [(15, "ipz: 198.51.100.66/32")]
    chain = ask(server, "ipchain.fake.test", use_edns=0)  # the address at the end of a CNAME chain
    assert_negative(chain, dns.rcode.NXDOMAIN, "ipchain.fake.test")
    ranged = ask(server, "iprange.fake.test", use_edns=0)  # 198.19.3.4 is in 198.18.0.0/15
    assert_negative(ranged, dns.rcode.NOERROR, "iprange.fake.test")
    assert edes(ranged) == [(15, "ipz: 198.18.0.0/15")]
    v6 = ask(server, "ip6bad.fake.test", "AAAA", use_edns=0)
    assert_negative(v6, dns.rcode.NXDOMAIN, "ip6bad.fake.test")
    assert edes(v6) == [(15, "ipz: 2001:db8:bad::/48")]
    assert_forwarded(ask(server, "ipgood.fake.test", use_edns=0), ["198.51.100.67"])
    again = ask(server, "ipbad.fake.test", use_edns=0)  # from the cache: judged again
    assert_negative(again, dns.rcode.NXDOMAIN, "ipbad.fake.test")
    assert fake.queries.count(("ipbad.fake.test", "A", "udp")) == 1


def test_rpz_client_ip_trigger(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"clients.rpz": rpz("""
        32.1.0.0.127.rpz-client-ip  CNAME .
        8.0.0.0.10.rpz-client-ip    CNAME rpz-drop.
        www.sinkdns.test            CNAME rpz-passthru.
        """)})
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    # The client is 127.0.0.1: its trigger comes first in RPZ order, before the passthru on the name.
    for qname in ("www.sinkdns.test", "mail.sinkdns.test"):
        response = ask(server, qname, use_edns=0)
        assert_negative(response, dns.rcode.NXDOMAIN, qname)
        assert edes(response) == [(15, "clients: 127.0.0.1/32")]
    other = zones_dir(tmp_path, {"clients.rpz": rpz("24.9.9.10.rpz-client-ip CNAME .\n")}, name="other")
    server2 = start_sinkdns("--upstream", nsd.address, "--zones", str(other), *BLOCK_FLAGS, name="other")
    assert_forwarded(ask(server2, "www.sinkdns.test", use_edns=0), ["192.0.2.10"])


# --- drop and tcp-only --------------------------------------------------------------------------------

@pytest.fixture
def drop_tcp(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"acts.rpz": rpz("""
        www.sinkdns.test   CNAME rpz-drop.
        mail.sinkdns.test  CNAME rpz-tcp-only.
        """)})
    return start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)


def test_rpz_drop_sends_nothing_over_udp(drop_tcp):
    dropped = dns.message.make_query("www.sinkdns.test", "A", use_edns=0)
    control = dns.message.make_query("ns1.sinkdns.test", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect((drop_tcp.host, drop_tcp.port))
        sock.send(dropped.to_wire())
        sock.send(control.to_wire())
        first = dns.message.from_wire(sock.recv(65535))
        assert first.id == control.id  # the server is alive and answered the later query
        sock.settimeout(1.0)  # the only wait for something that must not come
        with pytest.raises(socket.timeout):
            sock.recv(65535)


def test_rpz_drop_closes_the_tcp_connection(drop_tcp):
    wire = dns.message.make_query("www.sinkdns.test", "A").to_wire()
    with socket.create_connection((drop_tcp.host, drop_tcp.port), timeout=5) as conn:
        conn.sendall(struct.pack("!H", len(wire)) + wire)
        try:
            data = conn.recv(65535)
        except ConnectionResetError:
            data = b""
    assert data == b"", "a dropped query must close the connection without an answer"


def test_rpz_tcp_only_truncates_udp_and_answers_tcp(drop_tcp):
    udp = ask(drop_tcp, "mail.sinkdns.test", use_edns=0)
    assert udp.flags & dns.flags.TC
    assert udp.rcode() == dns.rcode.NOERROR
    assert udp.answer == [] and udp.authority == []
    assert udp.question[0].name == dns.name.from_text("mail.sinkdns.test")
    tcp = ask(drop_tcp, "mail.sinkdns.test", tcp=True, use_edns=0)
    assert not tcp.flags & dns.flags.TC
    assert_forwarded(tcp, ["192.0.2.25"])  # as if not blocked: no EDE either


# --- dry-run, until, canaries -------------------------------------------------------------------------

def test_dry_run_answers_as_if_not_blocked(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {
        "trial.toml": 'mode = "dry-run"\ndomains = ["www.sinkdns.test"]\n',
        "real.txt": "mail.sinkdns.test\n",
    })
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    for edns_options in ([], sde_query_options()):
        assert_forwarded(ask(server, "www.sinkdns.test", use_edns=0, options=edns_options), ["192.0.2.10"])
        assert_forwarded(ask(server, "www.sinkdns.test", "AAAA", use_edns=0, options=edns_options), ["2001:db8::10"])
        alias = ask(server, "alias.sinkdns.test", use_edns=0, options=edns_options)  # CNAME to the dry-run name
        assert_forwarded(alias, ["192.0.2.10"])
    real = ask(server, "mail.sinkdns.test", use_edns=0)  # the same server enforces the other file
    assert_block(real, "mail.sinkdns.test")
    assert edes(real) == [(15, "real: mail.sinkdns.test")]


def test_until_in_the_past_lapsed_and_in_the_future_blocks(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {
        "a-lapsed.toml": """
            action = "nxdomain"
            until = 2001-01-01T00:00:00Z
            domains = ["www.sinkdns.test", "mail.sinkdns.test"]
            """,
        "b-current.txt": "mail.sinkdns.test\n",
        "c-future.toml": 'until = 2999-01-01T00:00:00+02:00\ndomains = ["ns1.sinkdns.test"]\n',
    })
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    assert_forwarded(ask(server, "www.sinkdns.test", use_edns=0), ["192.0.2.10"])
    fallback = ask(server, "mail.sinkdns.test", use_edns=0)  # the lapsed rule gives way to the next one
    assert_block(fallback, "mail.sinkdns.test")
    assert edes(fallback) == [(15, "b-current: mail.sinkdns.test")]
    future = ask(server, "ns1.sinkdns.test", use_edns=0)
    assert_block(future, "ns1.sinkdns.test")
    assert edes(future) == [(15, "c-future: ns1.sinkdns.test")]


def test_until_lapses_while_serving(nsd, tmp_path, start_sinkdns):
    lapse = int(time.time()) + 4
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lapse))
    zones = zones_dir(tmp_path, {"soon.toml": f'until = {stamp}\ndomains = ["short.sinkdns.test"]\n'})
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    assert time.time() < lapse - 0.5, "sinkdns took too long to start for this test"
    assert_block(ask(server, "short.sinkdns.test"), "short.sinkdns.test")
    forwarded = until(lambda: (r := ask(server, "short.sinkdns.test")) and addresses(r) == ["192.0.2.60"] and r,
                      10, "the block to lapse")
    assert time.time() >= lapse - 0.05, "lapsed before its `until`"
    assert_forwarded(forwarded, ["192.0.2.60"], ttl_max=60)


@pytest.mark.parametrize("qname", ["use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"])
def test_canary_names_get_nxdomain(shipped_fake, module_fake, qname):
    server = shipped_fake
    for rdtype in ("A", "AAAA", "HTTPS"):
        assert_negative(ask(server, qname, rdtype), dns.rcode.NXDOMAIN, qname)
    assert not [q for q in module_fake.queries if q[0] == qname]  # answered without asking upstream
    assert_forwarded(ask(server, "www.icloud.com", use_edns=0), [FAKE_A])


# --- reload -------------------------------------------------------------------------------------------

def blocked(server, qname: str) -> bool:
    return addresses(ask(server, qname)) == list(BLOCK4)


def test_sighup_adds_and_removes_a_file(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"base.txt": "unrelated.test\n"})
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    assert_forwarded(ask(server, "www.sinkdns.test"), ["192.0.2.10"])
    (zones / "fresh.hosts").write_text("0.0.0.0 www.sinkdns.test\n")
    server.signal(signal.SIGHUP)
    until(lambda: blocked(server, "www.sinkdns.test"), 10, "the new file to block after SIGHUP")
    assert edes(ask(server, "www.sinkdns.test", use_edns=0)) == [(15, "fresh: www.sinkdns.test")]
    (zones / "fresh.hosts").unlink()  # a file deleted is a policy removed
    server.signal(signal.SIGHUP)
    until(lambda: addresses(ask(server, "www.sinkdns.test")) == ["192.0.2.10"], 10, "the removed file to stop blocking")


def test_broken_file_keeps_its_last_good_version(nsd, tmp_path, start_sinkdns):
    good = 'name = "Blocker"\ndomains = ["www.sinkdns.test"]\n'
    zones = zones_dir(tmp_path, {"blocker.toml": good})
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    assert blocked(server, "www.sinkdns.test")
    broken = 'name = "Blocker"\ndomains = ["www.sinkdns.test", "mail.sinkdns.test"]\nreason = "unterminated\n'
    (zones / "blocker.toml").write_text(broken)  # a TOML syntax error on line 3
    server.signal(signal.SIGHUP)
    until(lambda: "blocker.toml:3:" in server.log(), 10, "the error naming blocker.toml:3 in the log")
    errors = [line for line in server.log().splitlines() if "blocker.toml" in line]
    assert len(errors) == 1 and "level=error" in errors[0], errors
    assert "last good version stays in force" in errors[0]
    for _ in range(3):
        response = ask(server, "www.sinkdns.test", use_edns=0)
        assert_block(response, "www.sinkdns.test")
        assert edes(response) == [(15, "blocker: www.sinkdns.test")]
    assert_forwarded(ask(server, "mail.sinkdns.test"), ["192.0.2.25"])  # the broken version is not in force
    (zones / "blocker.toml").write_text('domains = ["www.sinkdns.test", "mail.sinkdns.test"]\n')
    server.signal(signal.SIGHUP)
    until(lambda: blocked(server, "mail.sinkdns.test"), 10, "the fixed file to apply")
    assert blocked(server, "www.sinkdns.test")


def test_vanished_zones_directory_keeps_the_policy(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"blocker.txt": "www.sinkdns.test\n"})
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    assert blocked(server, "www.sinkdns.test")
    zones.rename(tmp_path / "moved-away")
    server.signal(signal.SIGHUP)
    until(lambda: "cannot read the zones directory" in server.log(), 10, "the directory fault in the log")
    for _ in range(3):
        assert blocked(server, "www.sinkdns.test")
    (tmp_path / "moved-away").rename(zones)
    (zones / "more.txt").write_text("mail.sinkdns.test\n")
    server.signal(signal.SIGHUP)
    until(lambda: blocked(server, "mail.sinkdns.test"), 10, "the directory to be read again")
    assert blocked(server, "www.sinkdns.test")


# --- reload under steady load -------------------------------------------------------------------------

LOAD_QUERIES = 6000
LOAD_SECONDS = 3.0
LOAD_WINDOW = 64
LOAD_MIX = [  # (name, type, expected addresses or rcode)
    ("www.kiwi.test", "A", list(BLOCK4)),
    ("www.sinkdns.test", "A", ["192.0.2.10"]),
    ("deep.kiwi.test", "A", list(BLOCK4)),
    ("mail.sinkdns.test", "A", ["192.0.2.25"]),
    ("www.sinkdns.test", "AAAA", ["2001:db8::10"]),
    ("missing.sinkdns.test", "A", dns.rcode.NXDOMAIN),
]


def blast(host: str, port: int, wires: list[bytes], seconds: float, window: int,
          stall: float = 2.0) -> tuple[int, dict]:
    """Send `wires` (query i has ID i) at an even pace over `seconds`, at most `window` unanswered at once.
    Stops when all are answered, or when nothing arrives for `stall` seconds (a loss). Returns (sent, answers)."""
    rate = len(wires) / seconds
    answers: dict[int, bytes] = {}
    outstanding: set[int] = set()
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.connect((host, port))
        sock.setblocking(False)
        start = last_event = time.monotonic()
        deadline = start + 2 * seconds + stall
        while time.monotonic() < deadline:
            now = time.monotonic()
            due = min(len(wires), int((now - start) * rate) + 1)
            while sent < due and len(outstanding) < window:
                sock.send(wires[sent])
                outstanding.add(sent)
                sent += 1
                last_event = now
            if sent == len(wires) and not outstanding:
                break
            if outstanding and now - last_event > stall:
                break
            readable, _, _ = select.select([sock], [], [], 0.002)
            while readable:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                qid = struct.unpack("!H", data[:2])[0]
                assert qid not in answers, f"two answers for query {qid}"
                outstanding.discard(qid)
                answers[qid] = data
                last_event = time.monotonic()
    return sent, answers


def check_answers(answers: dict[int, bytes]) -> None:
    for qid, data in answers.items():
        name, rdtype, expected = LOAD_MIX[qid % len(LOAD_MIX)]
        response = dns.message.from_wire(data)
        assert response.question[0].name == dns.name.from_text(name), qid
        if isinstance(expected, list):
            assert response.rcode() == dns.rcode.NOERROR, (qid, name)
            assert addresses(response) == expected, (qid, name)
        else:
            assert response.rcode() == expected, (qid, name)


def test_reload_under_steady_load_loses_no_query(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {"kiwi.txt": "kiwi.test\n"})
    churn = zones / "churn.txt"
    filler = "".join(f"filler{i}.churn.test\n" for i in range(20_000))
    churn.write_text("churn-0.test\n" + filler)
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    wires = []
    for i in range(LOAD_QUERIES):
        name, rdtype, _ = LOAD_MIX[i % len(LOAD_MIX)]
        query = dns.message.make_query(name, rdtype, use_edns=0)
        query.id = i
        wires.append(query.to_wire())
    for name, rdtype, _ in LOAD_MIX:
        ask(server, name, rdtype)  # warm the cache, as in a steady state

    sent, answers = blast(server.host, server.port, wires, LOAD_SECONDS, LOAD_WINDOW)  # the run without reloads
    assert sent == LOAD_QUERIES
    assert len(answers) == LOAD_QUERIES, f"{LOAD_QUERIES - len(answers)} queries lost without any reload"
    check_answers(answers)

    result: dict = {}
    def send() -> None:
        result["sent"], result["answers"] = blast(server.host, server.port, wires, LOAD_SECONDS, LOAD_WINDOW)

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    reloads = 0
    while sender.is_alive() and time.monotonic() - started < LOAD_SECONDS:
        reloads += 1
        churn.write_text(f"churn-{reloads}.test\n" + filler)  # each reload parses 20k lines off the event loop
        server.signal(signal.SIGHUP)
        sender.join(0.15)
    sender.join(3 * LOAD_SECONDS)
    assert not sender.is_alive()
    assert reloads >= 10
    assert result["sent"] == LOAD_QUERIES
    lost = LOAD_QUERIES - len(result["answers"])
    assert lost == 0, f"{lost} of {LOAD_QUERIES} queries lost during {reloads} reloads"
    check_answers(result["answers"])
    # The reloads took effect: the last version of the churn file is in force.
    until(lambda: blocked(server, f"churn-{reloads}.test"), 10, "the last reload to apply")
    assert not blocked(server, f"churn-{reloads - 1}.test")
    assert "level=error" not in server.log()


# --- start-up ----------------------------------------------------------------------------------------

def test_a_broken_file_at_start_up_is_reported_and_the_rest_serves(nsd, tmp_path, start_sinkdns):
    zones = zones_dir(tmp_path, {
        "good.txt": "www.sinkdns.test\n",
        "bad.toml": 'domains = ["mail.sinkdns.test"]\nede = 99\n',
    })
    server = start_sinkdns("--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    errors = [line for line in server.log().splitlines() if "level=error" in line]
    assert len(errors) == 1 and "bad.toml:2: ede:" in errors[0], errors
    assert blocked(server, "www.sinkdns.test")
    assert_forwarded(ask(server, "mail.sinkdns.test"), ["192.0.2.25"])


def _holds_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            if Path(fd.readlink()) == path:
                return True
        except OSError:
            continue
    return False


def test_sighup_while_the_policy_loads_at_start_up_does_not_kill_the_server(nsd, tmp_path, start_sinkdns):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see the policy load in progress")
    big = tmp_path / "zones" / "big.txt"
    zones = zones_dir(tmp_path, {"kiwi.txt": "kiwi.test\n"})
    big.write_text("".join(f"n{i}.big.test\n" for i in range(100_000)))
    server = Sinkdns(tmp_path / "early", "--upstream", nsd.address, "--zones", str(zones), *BLOCK_FLAGS)
    server._log = open(server.log_file, "wb")
    server.proc = subprocess.Popen(server.command(), cwd=ROOT, stdout=server._log, stderr=subprocess.STDOUT)
    try:
        # While big.txt is open the start-up load is parsing it: a SIGHUP now (an operator's reload, a
        # config-management run) must not end the process.
        until(lambda: server.proc.poll() is not None or _holds_open(server.proc.pid, big), 20,
              "sinkdns to be loading big.txt")
        server.signal(signal.SIGHUP)
        until(lambda: server.proc.poll() is not None or server.ready_file.exists(), 20, "sinkdns to become ready")
        assert server.proc.poll() is None, f"sinkdns died with {server.proc.returncode}: {server.log()}"
        server.info = json.loads(server.ready_file.read_text())
        assert blocked(server, "n99999.big.test") and blocked(server, "kiwi.test")
    finally:
        server.stop()
