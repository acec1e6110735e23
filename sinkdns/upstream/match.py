"""Whether bytes from an upstream answer the question asked (RFC 5452 9.1)."""


def answers_question(data: bytes, name: bytes, tail: bytes) -> bool:
    """A response (QR set) with one question whose name equals `name` ignoring case and whose type and
    class bytes equal `tail`."""
    n = len(name)
    return (
        len(data) >= 16 + n
        and data[2] & 0x80 != 0
        and data[4:6] == b"\x00\x01"
        and data[12:12 + n].lower() == name
        and data[12 + n:16 + n] == tail
    )
