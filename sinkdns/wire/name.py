"""Domain names on the wire: read with compression, skip, and turn into sinkdns's text form."""

from __future__ import annotations


class NameError_(ValueError):
    """A name that breaks RFC 1035 4.1.4 rules (bad pointer, label type, length)."""


def read_name(msg: bytes, offset: int) -> tuple[list[bytes], int]:
    """Return the labels of the name at `offset` and the offset just past it, following pointers.

    Pointers must point strictly backwards, which also rules out loops.
    """
    labels: list[bytes] = []
    end = -1
    total = 1
    limit = offset
    n = len(msg)
    while True:
        if offset >= n:
            raise NameError_("name runs past the end of the message")
        length = msg[offset]
        if length == 0:
            if end < 0:
                end = offset + 1
            return labels, end
        kind = length & 0xC0
        if kind == 0xC0:
            if offset + 1 >= n:
                raise NameError_("truncated compression pointer")
            target = ((length & 0x3F) << 8) | msg[offset + 1]
            if target >= limit:
                raise NameError_("compression pointer does not point backwards")
            if end < 0:
                end = offset + 2
            limit = target
            offset = target
            continue
        if kind:
            raise NameError_("reserved label type")
        start = offset + 1
        offset = start + length
        if offset > n:
            raise NameError_("label runs past the end of the message")
        total += length + 1
        if total > 255:
            raise NameError_("name longer than 255 octets")
        labels.append(msg[start:offset])


def skip_name(msg: bytes, offset: int) -> int:
    """Offset just past the name at `offset`, without following pointers."""
    n = len(msg)
    while True:
        if offset >= n:
            raise NameError_("name runs past the end of the message")
        length = msg[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 1 >= n:
                raise NameError_("truncated compression pointer")
            return offset + 2
        if length & 0xC0:
            raise NameError_("reserved label type")
        offset += length + 1


def labels_to_text(labels: list[bytes]) -> str:
    """sinkdns's text form of a name: lower case, no trailing dot, "" for the root.

    Plain LDH-ish labels decode directly; a label holding a dot, backslash or non-printing byte is
    escaped as in master files, so two different names never share one text.
    """
    parts = []
    for label in labels:
        text = label.lower().decode("latin-1")
        if not text.isprintable() or "." in text or "\\" in text or " " in text or not text.isascii():
            text = "".join(
                c if (c.isascii() and c.isprintable() and c not in ".\\ ") else "\\%03d" % ord(c)
                for c in text
            )
        parts.append(text)
    return ".".join(parts)


def text_to_wire(name: str) -> bytes:
    """Wire form of a plain dotted name (as found in config and policy: no escapes)."""
    name = name.rstrip(".")
    if not name:
        return b"\x00"
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise NameError_(f"bad label length in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise NameError_(f"name longer than 255 octets: {name!r}")
    return bytes(out)
