import socket
from pathlib import Path

from sinkdns.listen import UDP_RECEIVE_BUFFER, bind_pair

RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


def test_udp_receive_buffer_grown_as_far_as_the_kernel_allows():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        default = plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    udp, tcp = bind_pair(("127.0.0.1", 0))
    try:
        granted = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert granted >= default
        if RMEM_MAX.exists() and default < UDP_RECEIVE_BUFFER:  # Linux doubles the request, capped at rmem_max
            assert granted == max(default, 2 * min(UDP_RECEIVE_BUFFER, int(RMEM_MAX.read_text())))
    finally:
        udp.close()
        tcp.close()
