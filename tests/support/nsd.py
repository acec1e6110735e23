"""A real authoritative server (Debian's nsd) on a loopback port, serving the test zone.

nsd cannot bind port 0 and report it, so a free port is found and nsd is started on it; if nsd loses
that port to another process it exits, and the next port is tried.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query

from tests.support.system import require, terminate

ZONE = "sinkdns.test"
# 20 TXT records of 200 bytes: over 4 KB, so nsd truncates it over UDP and sinkdns must retry over TCP.
BIG_TXT = "\n".join(f'big IN TXT "{i:02d}{"x" * 198}"' for i in range(20))
ZONE_TEXT = f"""$ORIGIN {ZONE}.
$TTL 300
@       IN SOA ns1 hostmaster 1 3600 600 86400 30
@       IN NS ns1
ns1     IN A 192.0.2.53
www     IN A 192.0.2.10
www     IN AAAA 2001:db8::10
www     IN MX 10 mail
www     IN TXT "hello from nsd"
mail    IN A 192.0.2.25
alias   IN CNAME www
short   60 IN A 192.0.2.60
{BIG_TXT}
"""

CONF = """server:
  ip-address: 127.0.0.1
  port: {port}
  zonesdir: "{dir}"
  database: ""
  zonelistfile: "{dir}/zone.list"
  xfrdfile: "{dir}/xfrd.state"
  pidfile: "{dir}/nsd.pid"
  logfile: "{dir}/nsd.log"
  username: ""
  chroot: ""
  server-count: 1
  verbosity: 1
  rrl-ratelimit: 0
  do-ip6: no
remote-control:
  control-enable: no
zone:
  name: {zone}
  zonefile: {zone}.zone
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", port))
    return port


class Nsd:
    def __init__(self, workdir: Path) -> None:
        self.binary = require("nsd")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{ZONE}.zone").write_text(ZONE_TEXT)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Nsd:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.port = _free_port()
            conf = self.dir / "nsd.conf"
            conf.write_text(CONF.format(port=self.port, dir=self.dir, zone=ZONE))
            self.proc = subprocess.Popen(
                [self.binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            while self.proc.poll() is None and time.monotonic() < deadline:
                if self._answers():
                    return self
            self.stop()
        log = (self.dir / "nsd.log").read_text() if (self.dir / "nsd.log").exists() else ""
        raise RuntimeError(f"nsd did not start within {timeout}s: {log[-2000:]}")

    def _answers(self) -> bool:
        query = dns.message.make_query(f"{ZONE}.", "SOA")
        try:
            dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
        except (OSError, dns.exception.Timeout):
            return False
        return True

    def stop(self) -> None:
        terminate(self.proc)
