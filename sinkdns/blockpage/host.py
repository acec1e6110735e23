"""Read the name a visitor asked for out of a Host header."""

from __future__ import annotations

MAX_HOST = 300  # a 253-octet name, a port and an IPv6 literal's brackets fit; anything longer is abuse


class BadHost(ValueError):
    """A Host header no browser would send; the request gets 400."""


def host_name(value: str) -> str:
    """Lower case, without the port and the trailing dot: the form the policy lookup takes.

    Anything else is kept as sent (it is escaped when shown); only absurd lengths are refused, since a
    Host that is not a name simply matches no rule.
    """
    if len(value) > MAX_HOST:
        raise BadHost(f"Host header longer than {MAX_HOST} characters")
    host = value.strip().lower()
    if host.startswith("["):
        bracket = host.find("]")
        return host[1:bracket] if bracket > 0 else host
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.removesuffix(".")
