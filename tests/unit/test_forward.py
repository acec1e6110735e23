"""The forward stage's bounds: the in-flight cap and DNS rebinding protection, with a scripted group."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
import dnslib

from sinkdns.model import Outcome, Request
from sinkdns.resolvers.forward import ForwardStage
from sinkdns.resolvers.rebind import RebindFilter
from sinkdns.wire.reply import Reply
from tests.support.fake_upstream import answer
from tests.unit.util import request


class ScriptedGroup:
    """Answers each question with the records `records(qname)` gives, once `release` is set."""

    def __init__(self, records=lambda name: [f"{name} 300 IN A 192.0.2.9"]) -> None:
        self.records = records
        self.release = asyncio.Event()
        self.asked: list[str] = []

    def ask(self, req: Request, done) -> None:
        self.asked.append(req.qname)
        asyncio.ensure_future(self._answer(req, done))

    async def _answer(self, req: Request, done) -> None:
        await self.release.wait()
        query = dnslib.DNSRecord.parse(req.wire)
        done(Reply.from_wire(answer(query, *self.records(req.qname)), 12 + len(req.question), 0.0))


def test_beyond_the_in_flight_cap_queries_get_servfail_at_once():
    async def main():
        group = ScriptedGroup()
        stage = ForwardStage(group, {}, max_inflight=3)
        waiting = [asyncio.ensure_future(stage(request(f"n{i}.example"))) for i in range(3)]
        await asyncio.sleep(0)
        shed = stage(request("n3.example"))
        assert shed.outcome == Outcome.SERVFAIL and dns.message.from_wire(shed.wire).rcode() == dns.rcode.SERVFAIL
        assert shed.entry is None and stage.shed == 1  # counted, and never cached
        joined = asyncio.ensure_future(stage(request("N1.example")))  # shares a slot already taken
        group.release.set()
        results = await asyncio.gather(*waiting, joined)
        assert {r.outcome for r in results} == {Outcome.FORWARDED} and stage.shed == 1
        assert group.asked == ["n0.example", "n1.example", "n2.example"]
        assert stage.inflight == {}
        assert (await stage(request("n3.example"))).outcome == Outcome.FORWARDED  # slots are given back

    asyncio.run(main())


def rebind_stage(records, allowed=(), conditional=None):
    group = ScriptedGroup(records)
    group.release.set()
    conditional = {name: ScriptedGroup(records) for name in conditional or ()}
    for other in conditional.values():
        other.release.set()
    return ForwardStage(group, conditional, rebind=RebindFilter(allowed))


def test_rebinding_answers_for_public_names_become_nodata():
    def records(name):
        return {
            "evil.example": [f"{name} 60 IN A 192.0.2.1", f"{name} 60 IN A 192.168.1.1"],
            "evil6.example": [f"{name} 60 IN AAAA ::ffff:7f00:1"],
            "zero.example": [f"{name} 60 IN A 0.0.0.0"],
        }.get(name, [f"{name} 60 IN A 192.0.2.1"])

    async def main():
        stage = rebind_stage(records)
        for name in ("evil.example", "evil6.example", "zero.example"):
            res = await stage(request(name, "AAAA" if "6" in name else "A"))
            msg = dns.message.from_wire(res.wire)
            assert res.outcome == Outcome.BLOCKED and res.entry is None, name
            assert msg.rcode() == dns.rcode.NOERROR and msg.answer == [], name
        assert stage.rebind.rejected == 3
        good = await stage(request("good.example"))
        assert good.outcome == Outcome.FORWARDED and good.entry is not None

    asyncio.run(main())


def test_rebinding_protection_spares_allowed_names_and_conditional_domains():
    async def main():
        stage = rebind_stage(lambda name: [f"{name} 60 IN A 10.0.0.5"], allowed=("corp.example.",), conditional=("lan",))
        for name in ("corp.example", "host.corp.example", "printer.lan"):
            assert (await stage(request(name))).outcome == Outcome.FORWARDED, name
        assert (await stage(request("notcorp.example"))).outcome == Outcome.BLOCKED
        assert stage.rebind.rejected == 1

    asyncio.run(main())


def test_without_rebinding_protection_private_answers_pass():
    async def main():
        group = ScriptedGroup(lambda name: [f"{name} 60 IN A 127.0.0.1"])
        group.release.set()
        assert (await ForwardStage(group, {})(request("local.example"))).outcome == Outcome.FORWARDED

    asyncio.run(main())
