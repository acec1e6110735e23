import json

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dnslib
import pytest

from sinkdns.config import BlockPageConfig, PolicyConfig
from sinkdns.model import Outcome, Pending, Response
from sinkdns.policy.answer import sde_text
from sinkdns.policy.loader import load
from sinkdns.resolvers.policy import PolicyStage
from sinkdns.wire.parse import parse_query

NOW = 1_700_000_000.0
LINK = "https://example.com/why"
ZONES = {
    "acme.txt": "acme.example\n",
    "acme.toml": f'name = "Acme"\nreason = "Acme broke the rules."\nlink = "{LINK}"\ncontact = "mailto:abuse@op.example"\n',
    "feed.rpz": """$TTL 300
$ORIGIN rpz.test.
nx.example CNAME .
*.nx.example CNAME .
nodata.example CNAME *.
drop.example CNAME rpz-drop.
tc.example CNAME rpz-tcp-only.
ok.acme.example CNAME rpz-passthru.
garden.example A 192.0.2.10
garden.example TXT "walled"
walled.example CNAME garden.example.
wild.example CNAME *.garden.example.
32.66.100.51.198.rpz-ip CNAME .
24.0.2.0.192.rpz-client-ip CNAME rpz-drop.
""",
    "dry.txt": "dry.example\n",
    "dry.toml": 'mode = "dry-run"\n',
    "old.txt": "old.example\n",
    "old.toml": 'until = 2023-11-14T00:00:00Z\n',
    "ede.txt": "censored.example\n",
    "ede.toml": "ede = 16\nttl = 30\n",
}
FORWARDED = Response(b"forwarded", Outcome.FORWARDED)


class Reply:
    """What the cache and forward stages put in Response.entry."""

    def __init__(self, names=(), addresses=()):
        self.names, self.addresses = names, addresses


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("zones")
    for name, body in ZONES.items():
        (d / name).write_text(body)
    state = load(str(d))
    assert state.errors == []
    return state.index


def make_stage(index, next=lambda req: FORWARDED, block_ipv6=("2001:db8::1",), **kw):
    config = PolicyConfig(block_ip=("192.0.2.1", "192.0.2.2"), block_ipv6=block_ipv6, ttl=60, **kw)
    return PolicyStage(next, lambda: index, config, BlockPageConfig(operator="Op"), clock=lambda: NOW)


def query(name, qtype="A", edns=True, signal=False, transport="udp", client="127.0.0.1", want_dnssec=False):
    options = [dns.edns.GenericOption(dns.edns.OptionType.EDE, b"")] if signal else []
    q = dns.message.make_query(name, qtype, use_edns=0 if edns else False, options=options, want_dnssec=want_dnssec)
    q.flags |= dns.flags.AD
    return parse_query(q.to_wire(), (client, 5353), transport, 0.0)


def decode(resp):
    """Both independent codecs must read the bytes; return dnslib's view."""
    dns.message.from_wire(resp.wire)
    return dnslib.DNSRecord.parse(resp.wire)


def ede(resp):
    [opt] = [o for o in dns.message.from_wire(resp.wire).options if o.otype == dns.edns.OptionType.EDE]
    return opt.code, opt.text


@pytest.mark.parametrize("name, qtype, rcode, answers, soa_owner", [
    ("acme.example", "A", 0, ["192.0.2.1", "192.0.2.2"], None),
    ("www.Acme.Example", "A", 0, ["192.0.2.1", "192.0.2.2"], None),
    ("acme.example", "AAAA", 0, ["2001:db8::1"], None),
    ("acme.example", "ANY", 0, ["192.0.2.1", "192.0.2.2"], None),
    ("a.b.acme.example", "MX", 0, [], "acme.example."),
    ("acme.example", "HTTPS", 0, [], "acme.example."),
    ("acme.example", "SVCB", 0, [], "acme.example."),
    ("acme.example", "TXT", 0, [], "acme.example."),
    ("acme.example", "CNAME", 0, [], "acme.example."),
    ("nx.example", "A", 3, [], "nx.example."),
    ("deep.sub.nx.example", "A", 3, [], "nx.example."),
    ("nodata.example", "A", 0, [], "nodata.example."),
    ("garden.example", "A", 0, ["192.0.2.10"], None),
    ("garden.example", "TXT", 0, ['"walled"'], None),
    ("garden.example", "MX", 0, [], "garden.example."),
    ("walled.example", "AAAA", 0, ["garden.example."], None),
    ("wild.example", "A", 0, ["wild.example.garden.example."], None),
    ("censored.example", "MX", 0, [], "censored.example."),
], ids=lambda v: v if isinstance(v, str) else None)
def test_block_answers(index, name, qtype, rcode, answers, soa_owner):
    req = query(name, qtype)
    resp = make_stage(index)(req)
    assert type(resp) is Response and resp.outcome == Outcome.BLOCKED and resp.rcode == rcode
    msg = decode(resp)
    assert msg.header.id == req.id and msg.header.rcode == rcode and msg.header.qr
    assert not msg.header.ad and not msg.header.aa and msg.header.ra and msg.header.rd
    assert str(msg.q.qname) == name + "."  # the question keeps the client's letter case
    assert [str(rr.rdata) for rr in msg.rr] == answers
    if soa_owner:
        [soa] = msg.auth
        assert (str(soa.rname), soa.rtype, soa.ttl, soa.rdata.times[-1]) == (soa_owner, 6, resp.decision.ttl, resp.decision.ttl)
    else:
        assert msg.auth == []


def test_aaaa_without_block_ipv6_is_nodata(index):
    msg = decode(make_stage(index, block_ipv6=())(query("acme.example", "AAAA")))
    assert msg.rr == [] and str(msg.auth[0].rname) == "acme.example."


def test_decision_and_ede(index):
    resp = make_stage(index)(query("www.acme.example"))
    d = resp.decision
    assert (d.action, d.customer, d.zone, d.rule, d.source, d.reason, d.link, d.ttl) == (
        "blockpage", "acme", "acme.txt", "acme.example", "acme.txt:1", "Acme broke the rules.", LINK, 60)
    assert ede(resp) == (15, f"acme: acme.example; {LINK}")
    assert ede(make_stage(index)(query("censored.example")))[0] == 16


def test_structured_error_when_the_client_signals(index):
    code, text = ede(make_stage(index)(query("acme.example", signal=True)))
    assert code == 15
    assert json.loads(text) == {"j": f"Acme broke the rules. {LINK}", "c": ["mailto:abuse@op.example"], "o": "Op"}


def test_no_opt_without_edns_and_do_not_echoed(index):
    assert decode(make_stage(index)(query("acme.example", edns=False))).ar == []
    resp = make_stage(index)(query("acme.example", want_dnssec=True))
    assert not dns.message.from_wire(resp.wire).ednsflags & dns.flags.DO


@pytest.mark.parametrize("reason", ["short", "x" * 500, "é" * 300])
def test_sde_text_stays_valid_json_within_200_bytes(reason):
    text = sde_text(reason, LINK, "mailto:abuse@op.example", "Operator")
    assert len(text.encode()) <= 200 and json.loads(text)["j"].endswith(LINK)


def test_drop_and_tcp_only(index):
    stage = make_stage(index)
    dropped = stage(query("drop.example"))
    assert dropped.wire is None and dropped.outcome == Outcome.BLOCKED
    tc = stage(query("tc.example"))
    assert decode(tc).header.tc and tc.outcome == Outcome.BLOCKED
    assert stage(query("tc.example", transport="tcp")) is FORWARDED


def test_client_ip_trigger_comes_first(index):
    resp = make_stage(index)(query("anything.example", client="192.0.2.77"))
    assert resp.wire is None and resp.decision.rule == "192.0.2.0/24"


def test_allow_passes_and_stops_response_checks(index):
    stage = make_stage(index, next=lambda req: Response(b"x", Outcome.FORWARDED, entry=Reply(["nx.example"])))
    resp = stage(query("ok.acme.example"))
    assert resp.outcome == Outcome.FORWARDED and resp.decision.action == "allow"


@pytest.mark.parametrize("entry, blocked_by", [
    (Reply(names=["cdn.nx.example"]), "*.nx.example"),
    (Reply(names=["clean.example", "www.acme.example"]), "acme.example"),
    (Reply(addresses=["198.51.100.66"]), "198.51.100.66/32"),
    (Reply(names=["clean.example"], addresses=["198.51.100.67"]), None),
    (None, None),
])
def test_deep_cname_and_response_ip(index, entry, blocked_by):
    resp = make_stage(index, next=lambda req: Response(b"up", Outcome.CACHED, entry=entry))(query("clean.example", "MX"))
    if blocked_by is None:
        assert resp.outcome == Outcome.CACHED and resp.decision is None
        return
    assert resp.outcome == Outcome.BLOCKED and resp.decision.rule == blocked_by
    msg = decode(resp)
    assert str(msg.q.qname) == "clean.example." and str(msg.auth[0].rname) == "clean.example."


def test_response_checks_work_on_an_answer_that_arrives_later(index):
    upstream = Pending()
    result = make_stage(index, next=lambda req: upstream)(query("clean.example"))
    finished = []
    result.finish(finished.append)
    assert finished == []
    upstream.settle(Response(b"up", Outcome.FORWARDED, entry=Reply(names=["x.nx.example"])))
    assert [r.outcome for r in finished] == [Outcome.BLOCKED]


def test_dry_run_answers_as_if_not_blocked_and_says_so(index):
    resp = make_stage(index)(query("dry.example"))
    assert resp.outcome == Outcome.FORWARDED and resp.wire == b"forwarded" and resp.decision.action == "dry-run"


def test_until_lapses(index):
    assert make_stage(index)(query("old.example")) is FORWARDED


@pytest.mark.parametrize("name", ["use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"])
def test_canaries_are_nxdomain(index, name):
    resp = make_stage(index)(query(name))
    assert resp.outcome == Outcome.LOCAL and decode(resp).header.rcode == 3


def test_canaries_are_configurable(index):
    assert make_stage(index, canaries=())(query("use-application-dns.net")) is FORWARDED


def test_unmatched_query_goes_next_untouched(index):
    assert make_stage(index)(query("example.org")) is FORWARDED
