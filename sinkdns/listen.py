"""Open the DNS sockets: UDP and TCP on each address, sharing one port number even when asked for port 0."""

from __future__ import annotations

import errno
import logging
import socket

from sinkdns.config import Endpoint, format_endpoint
from sinkdns.errors import SinkdnsError

PORT_ZERO_TRIES = 20
# Bytes asked for each UDP socket's receive buffer (Unbound's so-rcvbuf): at the usual 212,992 a queue
# of a few hundred queries overflows when the event loop stalls for a moment (a policy reload, a
# collection), and the kernel drops what follows. The kernel caps the request at net.core.rmem_max
# (and doubles it for its own overhead); the size granted is logged at debug.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024

log = logging.getLogger("sinkdns")


class BindError(SinkdnsError):
    """A listening address cannot be used (in use, not ours, or needs privileges)."""


def _socket(host: str, kind: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    else:
        _grow_receive_buffer(sock)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)
    return sock


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Ask for UDP_RECEIVE_BUFFER bytes, unless the system default is already larger."""
    before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if before < UDP_RECEIVE_BUFFER:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    log.debug("udp receive buffer", extra={"requested": UDP_RECEIVE_BUFFER, "default": before,
                                           "granted": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)})


def bind_pair(ep: Endpoint, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a listening TCP socket on the same address and port."""
    host, port = ep
    for _ in range(PORT_ZERO_TRIES if port == 0 else 1):
        udp = _socket(host, socket.SOCK_DGRAM, reuse_port)
        try:
            udp.bind((host, port))
        except OSError as exc:
            udp.close()
            raise BindError(f"cannot listen on {format_endpoint(ep)}/udp: {exc.strerror}") from None
        bound = udp.getsockname()[1]
        tcp = _socket(host, socket.SOCK_STREAM, reuse_port)
        try:
            tcp.bind((host, bound))
            tcp.listen(1024)
            return udp, tcp
        except OSError as exc:
            udp.close()
            tcp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise BindError(f"cannot listen on {format_endpoint((host, bound))}/tcp: {exc.strerror}") from None
    raise BindError(f"no port free for both UDP and TCP on {host}")
