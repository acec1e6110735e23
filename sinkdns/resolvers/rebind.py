"""DNS rebinding protection, dnsmasq's stop-dns-rebind: a public name must not resolve into the LAN."""

from __future__ import annotations

from sinkdns.addresses import AddressSet
from sinkdns.wire.reply import Reply


class RebindFilter:
    """DNS rebinding protection (dnsmasq's stop-dns-rebind): an upstream answer for a public name that
    holds a loopback, private, link-local or "this host" address lets a web page reach the LAN through
    the visitor's browser, so it is answered NODATA instead. Names in `allowed` (and under them) are
    the operator's own and exempt. `rejected` counts the answers replaced."""

    def __init__(self, allowed: tuple[str, ...] = (), private: AddressSet | None = None) -> None:
        self.allowed = frozenset(name.rstrip(".").lower() for name in allowed)
        self.private = private if private is not None else AddressSet()
        self.rejected = 0

    def rejects(self, qname: str, reply: Reply) -> bool:
        contains = self.private.contains
        if not any(contains(address) for address in reply.addresses) or self._allowed(qname):
            return False
        self.rejected += 1
        return True

    def _allowed(self, qname: str) -> bool:
        name = qname
        while True:
            if name in self.allowed:
                return True
            dot = name.find(".")
            if dot < 0:
                return False
            name = name[dot + 1:]

