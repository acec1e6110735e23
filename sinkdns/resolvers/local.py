"""Names that must never leave the machine (RFC 6761, 6762, 7686, 6303), answered here.

`localhost` and names under it resolve to loopback; the special-use and private reverse zones get
NXDOMAIN with an SOA so stubs cache the answer. A domain the operator forwards conditionally (a private
reverse zone served by a corporate server, say) is not answered here.
"""

from __future__ import annotations

import ipaddress

from sinkdns.model import Outcome, Request, Response, Result
from sinkdns.resolvers.base import Stage
from sinkdns.wire import build
from sinkdns.wire import constants as c
from sinkdns.wire.name import text_to_wire

LOCAL_TTL = 3600
_RNAME = text_to_wire("nobody.invalid")
_LOOPBACK = {c.TYPE_A: ipaddress.IPv4Address("127.0.0.1").packed, c.TYPE_AAAA: ipaddress.IPv6Address("::1").packed}


def _reverse_zones() -> list[str]:
    zones = ["10", "168.192", "0", "127", "254.169", "2.0.192", "100.51.198", "113.0.203", "255.255.255.255"]
    zones += [f"{n}.172" for n in range(16, 32)]
    zones += [f"{n}.100" for n in range(64, 128)]  # RFC 7793: 100.64.0.0/10
    names = [f"{z}.in-addr.arpa" for z in zones]
    names += ["0." * 31 + "0.ip6.arpa", "1." + "0." * 31 + "ip6.arpa", "d.f.ip6.arpa"]
    names += [f"{x}.e.f.ip6.arpa" for x in "89ab"]
    names += ["8.b.d.0.1.0.0.2.ip6.arpa"]
    return names


NXDOMAIN_ZONES = ("invalid", "onion", "local", *_reverse_zones())


class LocalStage(Stage):
    name = "local"

    def __init__(self, next, forwarded_domains: tuple[str, ...] = ()) -> None:
        super().__init__(next)
        self.zones: dict[str, str] = {"localhost": "localhost"}
        self.zones.update((zone, "nxdomain") for zone in NXDOMAIN_ZONES)
        for domain in forwarded_domains:
            self.zones[domain] = "forward"
        self.tops = frozenset(zone.rpartition(".")[2] for zone in self.zones)  # their last labels

    def __call__(self, req: Request) -> Result:
        name = req.qname
        if name.rpartition(".")[2] not in self.tops:  # nearly every query: no zone here can hold it
            return self.next(req)
        zones = self.zones
        while True:
            kind = zones.get(name)
            if kind is not None:
                if kind == "forward":
                    break
                return self._answer(req, name, kind)
            dot = name.find(".")
            if dot < 0:
                break
            name = name[dot + 1:]
        return self.next(req)

    def _answer(self, req: Request, zone: str, kind: str) -> Response:
        rdata = _LOOPBACK.get(req.qtype) if kind == "localhost" else None
        if rdata is not None:
            wire = build.answer(req, answers=(build.rr(build.QNAME_POINTER, req.qtype, LOCAL_TTL, rdata),))
            return Response(wire, Outcome.LOCAL)
        rcode = c.NOERROR if kind == "localhost" else c.NXDOMAIN
        return Response(build.negative(req, rcode, zone, LOCAL_TTL, _RNAME), Outcome.LOCAL, rcode)
