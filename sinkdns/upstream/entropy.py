"""Unpredictable query IDs and source-port choices, without a system call for each.

Both must be unguessable by an off-path attacker (RFC 5452), so they come from the operating system's
CSPRNG; reading it 4 KiB at a time instead of 2 bytes at a time takes a system call off every query.
"""

from __future__ import annotations

import os

_CHUNK = 4096


class Entropy:
    def __init__(self) -> None:
        self._buffer = b""
        self._pos = 0

    def u16(self) -> int:
        """A uniformly random 16-bit number."""
        pos = self._pos
        if pos + 2 > len(self._buffer):
            self._buffer = os.urandom(_CHUNK)
            pos = 0
        self._pos = pos + 2
        return (self._buffer[pos] << 8) | self._buffer[pos + 1]

    def below(self, n: int) -> int:
        """A uniformly random number from 0 to n - 1, for n up to 65536 (rejection sampling: no bias)."""
        limit = 65536 - 65536 % n
        while True:
            value = self.u16()
            if value < limit:
                return value % n


entropy = Entropy()
