"""Addresses sorted into networks, with each decision remembered per address text.

The guard asks for every query whether its client may be served and how it is rate limited; parsing
the address with `ipaddress` each time would cost more than the rest of a blocked answer, so each
decision is computed once per address text and kept in a bounded table.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Generic, Iterable, TypeVar

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = ("127.0.0.0/8", "::1/128")
# Loopback, RFC 1918, shared address space (RFC 6598), unique local (RFC 4193) and link-local: the
# networks a resolver on a LAN serves by default; anyone else is the internet.
LOCAL = LOOPBACK + (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10",
)
# What a public name must never resolve to (dnsmasq's stop-dns-rebind): the local networks plus
# "this host" (0.0.0.0/8, ::), which browsers also treat as local.
REBIND = LOCAL + ("0.0.0.0/8", "::/128")

K = TypeVar("K")
V = TypeVar("V")
_MISSING = object()


class Memo(Generic[K, V]):
    """`fn` remembered for at most `size` keys; when full, the oldest key is forgotten first."""

    __slots__ = ("fn", "size", "table")

    def __init__(self, fn: Callable[[K], V], size: int = 65_536) -> None:
        self.fn = fn
        self.size = size
        self.table: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        table = self.table
        value = table.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = self.fn(key)
        if len(table) >= self.size:
            del table[next(iter(table))]
        table[key] = value
        return value


def parse_address(text: str) -> Address | None:
    """The address in `text` (a peer address as asyncio reports it), IPv4-mapped IPv6 unwrapped; None if
    it is not one. A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d, which must be judged
    by their IPv4 networks."""
    try:
        addr = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDR texts (host bits set are an error, so a typo is not silently widened)."""
    return tuple(ipaddress.ip_network(text) for text in texts)


def in_any(addr: Address, nets: tuple[Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in nets)


class AccessList:
    """Which clients are answered: those in `allow` and not in `deny` (deny wins); unreadable
    addresses never are."""

    def __init__(self, allow: Iterable[str] = LOCAL, deny: Iterable[str] = (), memo_size: int = 65_536) -> None:
        self.allow = networks(allow)
        self.deny = networks(deny)
        self.allows: Memo[str, bool] = Memo(self._decide, memo_size)

    def _decide(self, host: str) -> bool:
        addr = parse_address(host)
        return addr is not None and in_any(addr, self.allow) and not in_any(addr, self.deny)


class AddressSet:
    """Membership of address texts (as found in answers) in a set of networks, remembered per text."""

    def __init__(self, nets: Iterable[str] = REBIND, memo_size: int = 65_536) -> None:
        self.nets = networks(nets)
        self.contains: Memo[str, bool] = Memo(self._decide, memo_size)

    def _decide(self, text: str) -> bool:
        addr = parse_address(text)
        return addr is not None and in_any(addr, self.nets)
