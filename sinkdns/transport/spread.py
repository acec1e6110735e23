"""Spread UDP queries evenly over the workers' SO_REUSEPORT sockets.

By default the kernel picks a worker by a hash of the client's address and port, so a few busy clients
(a site's forwarding resolvers, a load generator) can land on one worker while the others idle. A
classic-BPF program attached to the group picks a socket at random for every datagram instead: a DNS
query over UDP carries no state from one packet to the next, so any worker may answer it.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct

log = logging.getLogger("sinkdns")

SO_ATTACH_REUSEPORT_CBPF = 51  # Linux 4.5
_SKF_AD_RANDOM = (-0x1000 + 56) & 0xFFFFFFFF  # the ancillary "random number" load
_INSTRUCTION = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k


def _program(sockets: int) -> bytes:
    load_random = _INSTRUCTION.pack(0x20, 0, 0, _SKF_AD_RANDOM)  # BPF_LD | BPF_W | BPF_ABS
    modulo = _INSTRUCTION.pack(0x94, 0, 0, sockets)  # BPF_ALU | BPF_MOD | BPF_K
    return_a = _INSTRUCTION.pack(0x16, 0, 0, 0)  # BPF_RET | BPF_A: the index of the socket in the group
    return load_random + modulo + return_a


def spread_evenly(sock: socket.socket, sockets: int) -> bool:
    """Make the SO_REUSEPORT group of `sock` (`sockets` members) pick a member at random per datagram.

    While a worker is being replaced the group is one short, and an index past its end makes the kernel
    fall back to its hash for that datagram, so nothing is lost. False where the kernel refuses.
    """
    code = _program(sockets)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // _INSTRUCTION.size, ctypes.addressof(buffer))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        log.debug("queries spread by the kernel's hash", extra={"reason": exc.strerror})
        return False
    return True
