"""Turn a name as written in a policy file into the key the index matches on (sinkdns's text form)."""

from __future__ import annotations

import ipaddress
import re

import idna

# One pass over the common case: ASCII labels of 1-63 letters, digits, '-' and '_', at least two of them.
_PLAIN = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z0-9_-]{1,63}")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


class BadName(ValueError):
    """A name a policy line cannot block; the message says why."""


def normalize(raw: str) -> str:
    """Lower case, trailing dot dropped, U-labels to A-labels; raise BadName for what no query can match.

    Single-label names are refused: in a list they would block a whole top-level domain.
    """
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]
    if not _PLAIN.fullmatch(name) or len(name) > 253 or "xn--" in name:
        name = _slow(name, raw)
    return name


def _slow(name: str, raw: str) -> str:
    if not name:
        raise BadName("empty name")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError) as exc:
            raise BadName(f"{raw!r} is not a valid IDN name ({exc})") from None
    labels = name.split(".")
    if len(labels) == 1:
        raise BadName(f"{raw!r} is a single label: it would block a whole top-level domain")
    for label in labels:
        if not label:
            raise BadName(f"{raw!r} has an empty label")
        if len(label) > 63:
            raise BadName(f"{raw!r} has a label longer than 63 octets")
        if not _LABEL.fullmatch(label):
            raise BadName(f"{raw!r} has a character a host name cannot hold")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                raise BadName(f"{raw!r} has an invalid A-label {label!r}") from None
    if len(name) > 253:
        raise BadName(f"{raw!r} is longer than 255 octets on the wire")
    return name


def is_ip(text: str) -> bool:
    """True for an IP literal, which lists sometimes write where a name belongs."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
