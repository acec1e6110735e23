"""The upstream pool, health and group against a fake upstream on loopback."""

from __future__ import annotations

import asyncio
import socket

import dns.rcode
import dnslib

from sinkdns.resolvers.forward import ForwardStage
from sinkdns.model import Outcome
from sinkdns.upstream.group import UpstreamGroup
from sinkdns.upstream.health import BACKOFF_MAX, Upstream, in_order
from sinkdns.upstream.pool import RENEW_AFTER, UdpPool
from tests.support.fake_upstream import FakeUpstream, answer
from tests.unit.util import request


def a_record(query, transport):
    return [answer(query, f"{query.q.qname} 300 IN A 192.0.2.9")]


def run(coro):
    return asyncio.run(coro)


def asked(group: UpstreamGroup, req) -> asyncio.Future:
    """The group's answer (a Reply, or None when no server gave one) as a future."""
    future = asyncio.get_running_loop().create_future()
    group.ask(req, future.set_result)
    return future


def test_health_backs_off_and_recovers():
    first, second = Upstream(("127.0.0.1", 1)), Upstream(("127.0.0.1", 2))
    assert in_order([first, second], 0.0) == [first, second]
    first.failed(10.0)
    assert in_order([first, second], 10.5) == [second, first]
    assert in_order([first, second], 11.0) == [first, second]  # back-off over: asked first again
    first.failed(11.0)
    assert first.down_until == 13.0  # doubled
    first.succeeded(0.01)
    assert first.healthy(11.0)


def test_pool_uses_many_ports_and_random_ids():
    async def main():
        pool = UdpPool(256)
        with FakeUpstream(a_record) as fake:
            up = Upstream(("127.0.0.1", fake.port))
            await pool.open({socket.AF_INET})
            ports = {s.transport.get_extra_info("sockname")[1] for s in pool._sockets[socket.AF_INET]}
            assert len(ports) == 256
            group = UpstreamGroup([up], pool, 1.0, 2.0)
            replies = await asyncio.gather(*(asked(group, request(f"n{i}.example")) for i in range(50)))
            assert all(r.addresses == ("192.0.2.9",) for r in replies)
        pool.close()

    run(main())


def test_pool_sockets_are_renewed():
    async def main():
        pool = UdpPool(2)
        with FakeUpstream(a_record) as fake:
            up = Upstream(("127.0.0.1", fake.port))
            await pool.open({socket.AF_INET})
            before = {id(s) for s in pool._sockets[socket.AF_INET]}
            group = UpstreamGroup([up], pool, 1.0, 2.0)
            for i in range(RENEW_AFTER * 3):
                await asked(group, request(f"n{i}.example"))
            await asyncio.sleep(0)
            after = {id(s) for s in pool._sockets[socket.AF_INET]}
            assert before.isdisjoint(after) and len(after) == 2
        pool.close()

    run(main())


def test_group_answers_none_after_asking_everyone_when_nobody_answers():
    async def main():
        pool = UdpPool(4)
        await pool.open({socket.AF_INET})
        with FakeUpstream(lambda q, t: []) as one, FakeUpstream(lambda q, t: []) as two:
            ups = [Upstream(("127.0.0.1", one.port)), Upstream(("127.0.0.1", two.port))]
            group = UpstreamGroup(ups, pool, 0.2, 1.0)
            assert await asked(group, request("x.example")) is None
            assert all(u.requests["timeout"] == 1 for u in ups)
        pool.close()

    run(main())


def test_truncated_udp_answer_is_fetched_over_tcp():
    def truncating(query, transport):
        if transport == "udp":
            reply = query.reply()
            reply.header.tc = 1
            return [bytes(reply.pack())]
        return [answer(query, f"{query.q.qname} 300 IN TXT \"{'y' * 200}\"")]

    async def main():
        pool = UdpPool(4)
        await pool.open({socket.AF_INET})
        with FakeUpstream(truncating) as fake:
            group = UpstreamGroup([Upstream(("127.0.0.1", fake.port))], pool, 1.0, 2.0)
            reply = await asked(group, request("big.example", "TXT"))
            assert reply.ancount == 1
            assert [q[2] for q in fake.queries] == ["udp", "tcp"]
        pool.close()

    run(main())


def test_forward_shares_one_exchange_and_answers_servfail_when_it_fails():
    async def main():
        pool = UdpPool(4)
        await pool.open({socket.AF_INET})
        with FakeUpstream(lambda q, t: [0.2, *a_record(q, t)]) as fake:
            group = UpstreamGroup([Upstream(("127.0.0.1", fake.port))], pool, 1.0, 2.0)
            stage = ForwardStage(group, {})
            reqs = [request(name) for name in ("Same.example", "same.example", "SAME.EXAMPLE")]
            responses = await asyncio.gather(*(stage(req) for req in reqs))
            assert len(fake.queries) == 1
            assert {r.outcome for r in responses} == {Outcome.FORWARDED}
            for req, res in zip(reqs, responses):
                parsed = dnslib.DNSRecord.parse(res.wire)
                assert parsed.header.id == req.id
                assert parsed.q.qname.label == (req.qname_wire[1:5], req.qname_wire[6:13])
        with FakeUpstream(lambda q, t: []) as dead:
            stage = ForwardStage(UpstreamGroup([Upstream(("127.0.0.1", dead.port))], pool, 0.1, 0.2), {})
            response = await stage(request("x.example"))
            assert response.outcome == Outcome.SERVFAIL and response.entry is None
        pool.close()

    run(main())


def test_back_off_stays_bounded_after_thousands_of_failures():
    up = Upstream(("127.0.0.1", 1))
    for _ in range(2000):
        up.failed(100.0)
    assert up.down_until == 100.0 + BACKOFF_MAX


def test_refusals_fail_over_without_backing_off_and_end_in_a_cached_servfail():
    async def main():
        pool = UdpPool(4)
        await pool.open({socket.AF_INET})
        with FakeUpstream(lambda q, t: [refused(q)]) as one, FakeUpstream(lambda q, t: [refused(q)]) as two:
            ups = [Upstream(("127.0.0.1", one.port)), Upstream(("127.0.0.1", two.port))]
            group = UpstreamGroup(ups, pool, 1.0, 2.0)
            for i in range(1100):  # more than a float's exponent: no refusal may break the group
                reply = await asked(group, request(f"n{i}.example"))
                assert reply is not None and reply.rcode == dns.rcode.SERVFAIL and reply.ancount == 0
            assert all(u.healthy(0.0) and u.failures == 0 and u.requests["REFUSED"] == 1100 for u in ups)
        pool.close()

    run(main())


def test_an_error_while_handling_an_answer_still_answers_the_waiters(monkeypatch):
    async def main():
        pool = UdpPool(4)
        await pool.open({socket.AF_INET})
        with FakeUpstream(a_record) as fake:
            group = UpstreamGroup([Upstream(("127.0.0.1", fake.port))], pool, 1.0, 2.0)
            monkeypatch.setattr("sinkdns.upstream.group.Reply.from_wire", boom)
            assert await asyncio.wait_for(asked(group, request("x.example")), 5) is None
        pool.close()

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    run(main())


def refused(query):
    reply = query.reply()
    reply.header.rcode = dnslib.RCODE.REFUSED
    return bytes(reply.pack())
