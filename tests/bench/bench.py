#!/usr/bin/env python3
"""`make bench`: sinkdns beside unbound and dnsmasq, measured with dnsperf on this machine.

Why it looks the way it does:

- The headline is **QPS per server CPU-second**. On a small machine dnsperf needs a core of its own,
  so the raw QPS of a fast server measures dnsperf; the CPU a server spends per query does not depend
  on the load generator. Raw QPS, lost queries, p50/p99 and RSS are reported beside it.
- Everything is local and bounded: nsd on 127.0.0.1 plays "the internet" (a wildcard zone, so every
  name resolves), every server listens on 127.0.0.1 only, every dnsperf run is bounded by time (-l),
  by count (-n) and by a hard timeout, and all files live in one temp dir that is removed at the end.
- Only processes this script started are ever signalled, by PID (their whole process tree, checked by
  start time so a reused PID is never hit), also on Ctrl-C, SIGTERM and errors.
- Each server is started fresh for every mix and round, so one mix's cache contents never help or
  hurt the next; rounds are interleaved (--repeat) and the tables show medians.
- It stands alone: the standard library, dnspython (a sinkdns dependency) for the readiness probes,
  and Debian's dnsperf and nsd. It imports nothing from tests/support (that needs pytest).

Run `make bench ARGS="--help"` for the options; tests/bench/README.md says how to read the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

LOOPBACK = "127.0.0.1"
ZONE = "bench.test"
BLOCK_IP = "192.0.2.80"
PASS_A = "192.0.2.1"
MIXES = ("blocked", "cached", "uncached", "mixed")
PEERS = ("unbound", "dnsmasq")
APT = {"dnsperf": "dnsperf", "nsd": "nsd", "unbound": "unbound", "dnsmasq": "dnsmasq-base"}
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
CLK_TCK = os.sysconf("SC_CLK_TCK")
NAME_RE = re.compile(r"^(?=.{3,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def binary(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


# ------------------------------------------------------------------------------------------------
# Processes: started in their own session (Ctrl-C reaches only us), stopped by PID, tree included
# ------------------------------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on: [1] ppid, [11] utime, [12] stime, [19] start."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """`root` and all its descendants (sinkdns --workers forks worker processes)."""
    if _stat(root) is None:
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    out = [root]
    for pid in out:
        out.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """utime + stime of every live process in the tree (all threads) plus the children they reaped."""
    ticks = 0
    for pid in tree(root):
        if fields := _stat(pid):
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLK_TCK


def rss_mib(root: int) -> float:
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Proc:
    """A process we started. `running` lists those still to stop, whatever happens."""

    running: list[Proc] = []

    def __init__(self, name: str, argv: list[str], cwd: Path, log: Path) -> None:
        self.name, self.log = name, log
        self._out: IO[bytes] = open(log, "wb")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        Proc.running.append(self)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 12) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, SIGKILL after `grace`; then any descendant that outlived it (same PID and start time)."""
        family = [(pid, f[19]) for pid in tree(self.pid)[1:] if (f := _stat(pid))]
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for pid, start in family:
            if (f := _stat(pid)) and f[19] == start:
                os.kill(pid, signal.SIGKILL)
        self._out.close()
        if self in Proc.running:
            Proc.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for proc in reversed(cls.running[:]):
            try:
                proc.stop(grace=3.0)
            except Exception as e:  # go on: the others must be stopped too
                print(f"warning: stopping {proc.name} (pid {proc.pid}): {e}", file=sys.stderr)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (servers here cannot all report a port 0)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port on 127.0.0.1")


def query_a(port: int, name: str, timeout: float = 0.5) -> list[str]:
    """The A records a server on 127.0.0.1:port gives for `name` (raises on timeout or refusal)."""
    import dns.message
    import dns.query
    import dns.rdatatype

    answer = dns.query.udp(dns.message.make_query(name, "A"), LOOPBACK, port=port, timeout=timeout)
    return [rd.address for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]


def wait_answer(proc: Proc, port: int, name: str, want: str | None, timeout: float) -> float:
    """Seconds from start until `name` resolves to `want` (for the last blocked name: the list is loaded),
    or gets any answer when `want` is None."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.p.returncode}:\n{proc.tail()}")
        try:
            got = query_a(port, name)
            if want is None or want in got:
                return time.monotonic() - proc.t0
            last = f"answer {got}"
        except Exception as e:  # not listening yet, or no answer yet
            last = type(e).__name__
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name}: {name} not answered with {want} within {timeout:.0f}s ({last}):\n{proc.tail()}")


# ------------------------------------------------------------------------------------------------
# Data: the blocked names, the policy directory, dnsperf's query files
# ------------------------------------------------------------------------------------------------

_SYL = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
_PREFIXES = ("ads", "track", "pixel", "stats", "metrics", "cdn", "log", "beacon", "telemetry", "click")


def synthetic_names(n: int, seed: int) -> list[str]:
    """Shaped like real lists (registrable domains, ads7.x, deeper names), all under reserved .example."""
    rng = random.Random(seed)

    def word(lo: int, hi: int) -> str:
        return "".join(rng.choice(_SYL) for _ in range(rng.randint(lo, hi)))

    bases: list[str] = []
    seen: dict[str, None] = {}
    while len(seen) < n:
        r = rng.random()
        if r < 0.4 or len(bases) < 100:
            name = f"{word(2, 4)}{rng.randrange(1000) if rng.random() < 0.3 else ''}.example"
            bases.append(name)
        elif r < 0.85:
            name = f"{rng.choice(_PREFIXES)}{rng.randrange(100)}.{rng.choice(bases)}"
        else:
            name = f"{word(1, 3)}.{rng.choice(_PREFIXES)}.{rng.choice(bases)}"
        seen.setdefault(name)
    return list(seen)


def names_from(path: Path) -> Iterator[str]:
    """Blocked names in a policy file, read simply, for the peers' configs and the blocked mix: domain
    lists, hosts, adblock `||x^`, dnsmasq `address=/x/`, RPZ QNAME triggers, TOML `domains`. Names that
    sinkdns drops or sends to TCP (or allows) are left out: in a UDP load test they would count as lost
    or as not blocked. Allows are not subtracted from blocks; sinkdns reads the files with its own parser."""
    meta = path.with_suffix(".toml")
    try:
        action = tomllib.loads(meta.read_text()).get("action") if meta.is_file() else None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        action = None
    if action in ("drop", "allow"):
        return
    if path.suffix == ".toml":
        try:
            yield from tomllib.loads(path.read_text()).get("domains", [])
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            pass
        return
    rpz = path.suffix in (".rpz", ".zone")
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.split(";" if rpz else "#", 1)[0].strip()
            if not line or line[0] in "!@[$" or (rpz and raw[0].isspace()):
                continue
            if line.startswith("||"):
                yield re.split(r"[\^$/]", line[2:], maxsplit=1)[0]
            elif line.startswith(("address=/", "local=/", "server=/")):
                yield line.split("/")[1]
            elif rpz:
                owner = line.split()[0]
                if not re.search(r"rpz-(passthru|drop|tcp-only)\.|\.rpz-(client-ip|ip|nsdname|nsip)$", line + owner) \
                        and not owner.endswith("."):
                    yield owner
            else:
                parts = line.split()
                ip_first = len(parts) > 1 and (parts[0].count(".") == 3 or ":" in parts[0])
                yield from parts[1:] if ip_first else parts[:1]


def load_blocklist(src: Path) -> list[str]:
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix != ".md" and not p.name.startswith("README")) if src.is_dir() else [src]
    seen: dict[str, None] = {}
    for path in files:
        for name in names_from(path):
            name = name.strip().lower().rstrip(".").removeprefix("*.")
            if NAME_RE.match(name) and not (name == ZONE or name.endswith("." + ZONE) or ZONE.endswith("." + name)):
                seen.setdefault(name)
    return list(seen)


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    with open(path, "w") as f:
        for line in lines:
            f.write(line + "\n")
    return path


@dataclass
class Data:
    """Everything generated once per run: the policy (for sinkdns and the peers) and the query files."""

    dir: Path
    names: list[str]
    zones: Path
    probe: str  # the last name of the list: answered as blocked only once the whole list is loaded
    mixes: dict[str, tuple[Path, bool, Path]] = field(default_factory=dict)  # measured file, looped?, warm-up file
    cached: Path | None = None


def make_data(args: argparse.Namespace, top: Path) -> Data:
    d = top / "data"
    d.mkdir()
    if args.blocklist:
        src = Path(args.blocklist).expanduser().resolve()
        if not src.exists():
            raise SystemExit(f"error: --blocklist {src} does not exist")
        names = load_blocklist(src)
        if src.is_dir():
            zones = src  # the user's own policy directory, used as it is
        else:
            zones = d / "zones"
            zones.mkdir()
            shutil.copy(src, zones / src.name)
        say(f"blocklist {src.name}: {len(names)} names found for the peers and the blocked mix")
    else:
        names = synthetic_names(args.names, args.seed)
        zones = d / "zones"
        zones.mkdir()
        write_lines(zones / "bench-blocklist.txt", ["# generated by tests/bench/bench.py", *names])
        say(f"synthetic blocklist: {len(names)} names under .example (seed {args.seed})")
    if not names:
        raise SystemExit("error: no blocked names found in --blocklist")
    data = Data(d, names, zones, names[-1])
    rng = random.Random(args.seed + 1)
    lines = int(args.duration * args.max_qps)
    warm = int(max(args.warmup, 0.5) * args.max_qps)
    sample = rng.sample(names, min(len(names), 20_000))
    cached = [f"c{i}-{rng.choice(_SYL)}.{ZONE}" for i in range(256)]
    data.cached = write_lines(d / "cached.txt", (f"{n} A" for n in cached))

    def mixed(prefix: str, count: int) -> Iterator[str]:
        for i in range(count):
            r = rng.random()
            yield f"{rng.choice(sample) if r < 0.1 else rng.choice(cached) if r < 0.9 else f'{prefix}{i}.{ZONE}'} A"

    blocked = write_lines(d / "blocked.txt", (f"{n} A" for n in sample))
    if "blocked" in args.mix_list:
        data.mixes["blocked"] = (blocked, True, blocked)
    if "cached" in args.mix_list:
        data.mixes["cached"] = (data.cached, True, data.cached)
    if "uncached" in args.mix_list:
        data.mixes["uncached"] = (write_lines(d / "uncached.txt", (f"u{i}.{ZONE} A" for i in range(lines))), False,
                                  write_lines(d / "uncached-warm.txt", (f"w{i}.{ZONE} A" for i in range(warm))))
    if "mixed" in args.mix_list:
        data.mixes["mixed"] = (write_lines(d / "mixed.txt", mixed("m", lines)), False,
                               write_lines(d / "mixed-warm.txt", mixed("x", warm)))
    return data


# ------------------------------------------------------------------------------------------------
# Servers
# ------------------------------------------------------------------------------------------------

def start_nsd(top: Path) -> tuple[Proc, int]:
    """The upstream: authoritative for bench.test with a wildcard, rate limiting off (its default of
    200/s would throttle the uncached mix)."""
    run = top / "nsd"
    run.mkdir()
    (run / "bench.test.zone").write_text(
        f"$ORIGIN {ZONE}.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\n"
        f"ns IN A {LOOPBACK}\n* IN A {PASS_A}\n* IN AAAA 2001:db8::1\n")
    for _ in range(3):  # nsd exits if another process took the port meanwhile: take another
        port = free_port()
        (run / "nsd.conf").write_text(f"""server:
  ip-address: {LOOPBACK}
  port: {port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{run}"
  database: ""
  zonelistfile: "{run}/zone.list"
  xfrdfile: "{run}/xfrd.state"
  xfrdir: "{run}"
  pidfile: "{run}/nsd.pid"
  verbosity: 0
  do-ip6: no
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "{ZONE}"
  zonefile: "{run}/bench.test.zone"
""")
        proc = Proc("nsd", [binary("nsd") or "nsd", "-d", "-c", str(run / "nsd.conf")], run, run / "nsd.log")
        try:
            wait_answer(proc, port, f"probe.{ZONE}", PASS_A, 20)
            return proc, port
        except RuntimeError as e:
            proc.stop()
            error = e
    raise RuntimeError(f"nsd did not start: {error}")


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    run: Path
    ready_file: Path | None = None


def sinkdns_server(args: argparse.Namespace, data: Data, upstream: int, run: Path) -> Server:
    port = free_port()
    ready = run / "ready.json"
    argv = [sys.executable, "-m", "sinkdns", "serve", "--listen", f"{LOOPBACK}:{port}",
            "--upstream", f"{LOOPBACK}:{upstream}", "--zones", str(data.zones), "--block-ip", BLOCK_IP,
            "--metrics", f"{LOOPBACK}:0" if args.metrics == "on" else "off", "--block-page", f"{LOOPBACK}:0",
            "--state-dir", str(run / "state"), "--ready-file", str(ready)]
    if args.workers > 1:
        argv += ["--workers", str(args.workers)]
    return Server("sinkdns", argv, port, run, ready)


def unbound_server(data: Data, upstream: int, run: Path) -> Server:
    port = free_port()
    block = data.dir / "unbound-block.conf"
    if not block.exists():
        write_lines(block, (f'local-zone: "{n}." redirect\nlocal-data: "{n}. 300 IN A {BLOCK_IP}"'
                            for n in data.names))
    (run / "unbound.conf").write_text(f"""server:
    verbosity: 0
    interface: {LOOPBACK}
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{run}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    do-not-query-localhost: no
    outgoing-interface: {LOOPBACK}
    local-zone: "test." nodefault
    include: "{block}"
forward-zone:
    name: "."
    forward-addr: {LOOPBACK}@{upstream}
remote-control:
    control-enable: no
""")
    return Server("unbound", [binary("unbound") or "unbound", "-d", "-c", str(run / "unbound.conf")], port, run)


def dnsmasq_server(data: Data, upstream: int, run: Path) -> Server:
    port = free_port()
    block = data.dir / "dnsmasq-block.conf"
    if not block.exists():
        write_lines(block, (f"address=/{n}/{BLOCK_IP}" for n in data.names))
    (run / "dnsmasq.conf").write_text(f"""port={port}
listen-address={LOOPBACK}
bind-interfaces
no-resolv
no-hosts
no-poll
server={LOOPBACK}#{upstream}
cache-size=10000
pid-file=
log-facility=-
conf-file={block}
""")
    return Server("dnsmasq", [binary("dnsmasq") or "dnsmasq", "-k", "-C", str(run / "dnsmasq.conf")], port, run)


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------

@dataclass
class Result:
    server: str
    mix: str
    qps: float = 0.0
    sent: int = 0
    lost: int = 0
    cpu_s: float = 0.0
    per_cpu_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mib: float = 0.0
    start_s: float = 0.0
    rcodes: str = ""
    note: str = ""


def dnsperf(args: argparse.Namespace, top: Path, port: int, datafile: Path, seconds: float, loop: bool,
            verbose: bool) -> dict:
    """One bounded dnsperf run; its summary (and, with -v, the per-query latencies) parsed."""
    runs = 1
    if loop:  # a looped file is bounded by count too: at most duration x --max-qps queries
        with open(datafile) as f:
            runs = max(1, int(seconds * args.max_qps / sum(1 for _ in f)) + 1)
    argv = [binary("dnsperf") or "dnsperf", "-s", LOOPBACK, "-p", str(port), "-d", str(datafile),
            "-l", f"{seconds:g}", "-n", str(runs), "-c", "4", "-q", "100", "-T", "1", "-t", "2"]
    if verbose:
        argv.append("-v")
    out = top / "dnsperf.out"
    proc = Proc("dnsperf", argv, top, out)
    try:
        proc.p.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"dnsperf still running {seconds + 30:g}s after it was started") from None
    finally:
        proc.stop()
    res: dict = {}
    lat: list[float] = []
    summary: list[str] = []
    with open(out, errors="replace") as f:
        for line in f:
            if line.startswith("> "):  # -v: "> NOERROR name A 0.000123"
                try:
                    lat.append(float(line.rsplit(None, 1)[1]))
                except (IndexError, ValueError):
                    pass
            elif not line.startswith("[Timeout]"):
                summary.append(line)
    out.unlink()
    text = "".join(summary)
    for key, rx in (("sent", r"Queries sent:\s+(\d+)"), ("lost", r"Queries lost:\s+(\d+)"),
                    ("qps", r"Queries per second:\s+([\d.]+)"), ("runtime", r"Run time \(s\):\s+([\d.]+)")):
        if m := re.search(rx, text):
            res[key] = float(m.group(1))
    if m := re.search(r"Response codes:\s+(.*)", text):
        res["rcodes"] = m.group(1).strip()
    if "qps" not in res:
        raise RuntimeError("dnsperf: " + " / ".join(text.strip().splitlines()[-3:]))
    if lat:
        lat.sort()
        res["p50_ms"] = 1000 * lat[len(lat) // 2]
        res["p99_ms"] = 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return res


def log_problems(log: Path, offset: int) -> list[str]:
    """sinkdns's warnings and errors since `offset`, one line each (first few distinct messages)."""
    seen: dict[str, int] = {}
    with open(log, errors="replace") as f:
        f.seek(offset)
        for line in f:
            if m := re.search(r"level=(warning|error|critical) logger=\S+ msg=(\"(?:[^\"\\]|\\.)*\"|\S+)", line):
                key = f"{m.group(1)}: {m.group(2)}"
                seen[key] = seen.get(key, 0) + 1
    return [f"{k} (x{n})" for k, n in list(seen.items())[:3]]


def measure(args: argparse.Namespace, top: Path, data: Data, upstream: int, name: str, mix: str,
            rnd: int) -> Result:
    run = top / f"{name}-{mix}-{rnd}"
    run.mkdir()
    server = {"sinkdns": lambda: sinkdns_server(args, data, upstream, run),
              "unbound": lambda: unbound_server(data, upstream, run),
              "dnsmasq": lambda: dnsmasq_server(data, upstream, run)}[name]()
    result = Result(name, mix)
    proc = Proc(name, server.argv, run, run / f"{name}.log")
    try:
        if server.ready_file:
            while not server.ready_file.exists():
                if not proc.alive():
                    raise RuntimeError(f"{name} exited with {proc.p.returncode}:\n{proc.tail()}")
                if time.monotonic() - proc.t0 > args.startup_timeout:
                    raise RuntimeError(f"{name}: no ready file after {args.startup_timeout}s:\n{proc.tail()}")
                time.sleep(0.05)
        # sinkdns has loaded its policy when it writes the ready file; a user's policy may answer the
        # probe name otherwise than with the block IP (nxdomain, a walled garden, ...)
        want = None if server.ready_file and args.blocklist else BLOCK_IP
        result.start_s = wait_answer(proc, server.port, data.probe, want, args.startup_timeout)
        if (got := query_a(server.port, f"check.{ZONE}", 5)) != [PASS_A]:
            result.note = f"pass-through check got {got}"
        measured, loop, warm = data.mixes[mix]
        assert data.cached is not None
        dnsperf(args, top, server.port, data.cached, 30, loop=False, verbose=False)  # fill the cache
        if args.warmup > 0:
            dnsperf(args, top, server.port, warm, args.warmup, loop=loop, verbose=False)
        log_at = proc.log.stat().st_size
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        res = dnsperf(args, top, server.port, measured, args.duration, loop=loop, verbose=not args.no_latency)
        wall = time.monotonic() - t0
        result.cpu_s = cpu_seconds(proc.pid) - cpu0
        result.rss_mib = rss_mib(proc.pid)
        result.qps, result.sent, result.lost = res["qps"], int(res.get("sent", 0)), int(res.get("lost", 0))
        result.p50_ms, result.p99_ms, result.rcodes = res.get("p50_ms"), res.get("p99_ms"), res.get("rcodes", "")
        # the CPU was measured over the whole dnsperf process (wall), the QPS over its run time
        result.per_cpu_s = result.qps * res.get("runtime", wall) / result.cpu_s if result.cpu_s else 0.0
        notes = [result.note] if result.note else []
        if not loop and res.get("runtime", args.duration) < 0.9 * args.duration:
            notes.append("query file ran out early (raise --max-qps)")
        if name == "sinkdns" and (problems := log_problems(proc.log, log_at)):
            notes.append("log: " + "; ".join(problems))
        if not proc.alive():
            notes.append(f"exited with {proc.p.returncode} during the run")
        result.note = "; ".join(notes)
        say(f"{name:8s} {mix:9s} {result.qps:9.0f} QPS  {result.per_cpu_s:9.0f} QPS/CPU-s  lost {result.lost}"
            f"  p99 {result.p99_ms or 0:.2f} ms  RSS {result.rss_mib:.0f} MiB  start {result.start_s:.1f}s"
            + (f"  [{result.note}]" if result.note else ""))
    finally:
        proc.stop()
    return result


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

def median_result(rs: list[Result]) -> Result:
    def med(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return statistics.median(vals) if vals else None

    out = Result(rs[0].server, rs[0].mix)
    for key in ("qps", "lost", "cpu_s", "per_cpu_s", "p50_ms", "p99_ms", "rss_mib", "start_s", "sent"):
        setattr(out, key, med([getattr(r, key) for r in rs]))
    out.rcodes = rs[-1].rcodes
    out.note = "; ".join(dict.fromkeys(r.note for r in rs if r.note))
    return out


def versions() -> str:
    out = [f"Python {platform.python_version()}"]
    for name, argv, rx in (("sinkdns", [sys.executable, "-c", "import sinkdns; print(sinkdns.__version__)"], r"(\S+)"),
                           ("dnsperf", ["dnsperf", "-h"], r"Version (\S+)"), ("nsd", ["nsd", "-v"], r"version (\S+)"),
                           ("unbound", ["unbound", "-V"], r"Version (\S+)"),
                           ("dnsmasq", ["dnsmasq", "--version"], r"version (\S+)")):
        exe = argv[0] if argv[0] == sys.executable else binary(argv[0])
        if exe:
            try:
                p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=10)
                if m := re.search(rx, p.stdout + p.stderr):
                    out.append(f"{name} {m.group(1)}")
            except (OSError, subprocess.TimeoutExpired):
                pass
    return ", ".join(out)


def report(args: argparse.Namespace, results: list[Result], blocklist: str) -> str:
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.server, r.mix), []).append(r)
    rows = {k: median_result(v) for k, v in groups.items()}
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def f(x: float | None, nd: int = 0) -> str:
        return "-" if x is None else f"{x:,.{nd}f}"

    lines = [f"## sinkdns benchmark, {dt.date.today().isoformat()}", "",
             f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
             f"- {versions()}",
             f"- blocklist: {blocklist}; sinkdns workers {args.workers}, metrics {args.metrics}",
             f"- dnsperf -c 4 -q 100 -T 1 -t 2, {args.duration:g} s per run after a {args.warmup:g} s warm-up; "
             f"{args.repeat} round(s){', medians' if args.repeat > 1 else ''}; every server restarted per run",
             "", "| server | mix | QPS | lost | server CPU s | QPS per CPU-s | p50 ms | p99 ms | RSS MiB | start s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (server, mix), r in rows.items():
        lines.append(f"| {server} | {mix} | {f(r.qps)} | {f(r.lost)} | {f(r.cpu_s, 2)} | {f(r.per_cpu_s)} "
                     f"| {f(r.p50_ms, 3)} | {f(r.p99_ms, 3)} | {f(r.rss_mib)} | {f(r.start_s, 1)} |")
    peers = [p for p in dict.fromkeys(s for s, _ in rows) if p != "sinkdns"]
    mixes = list(dict.fromkeys(m for _, m in rows))
    if peers and any(s == "sinkdns" for s, _ in rows):
        lines += ["", "Ratios, sinkdns / peer: QPS per server CPU-second (raw QPS in brackets)", "",
                  "| ratio | " + " | ".join(mixes) + " |", "|---|" + "---:|" * len(mixes)]
        for peer in peers:
            cells = []
            for mix in mixes:
                s, p = rows.get(("sinkdns", mix)), rows.get((peer, mix))
                if s and p and p.per_cpu_s and p.qps:
                    cells.append(f"{s.per_cpu_s / p.per_cpu_s:.2f}x ({s.qps / p.qps:.2f}x)")
                else:
                    cells.append("-")
            lines.append(f"| sinkdns/{peer} | " + " | ".join(cells) + " |")
    notes = [f"- {r.server} {r.mix}: {r.note}" for r in rows.values() if r.note]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark sinkdns against unbound and dnsmasq with dnsperf, "
                                            "all on 127.0.0.1 (see tests/bench/README.md).")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per run (default %(default)s)")
    p.add_argument("--warmup", type=float, default=1,
                   help="warm-up seconds of the mix before each run (default %(default)s)")
    p.add_argument("--mixes", default=",".join(MIXES), help="comma list of %(default)s")
    p.add_argument("--peers", default=",".join(PEERS), help="comma list of %(default)s, or none")
    p.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the tables show medians")
    p.add_argument("--workers", type=int, default=1, help="sinkdns --workers (default %(default)s)")
    p.add_argument("--metrics", choices=("on", "off"), default="on", help="sinkdns metrics endpoint (default on)")
    p.add_argument("--blocklist", metavar="DIR_OR_FILE",
                   help="a policy directory (used by sinkdns as it is) or one list file, instead of the synthetic list")
    p.add_argument("--names", type=int, default=100_000, help="size of the synthetic list (default %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic list and query files")
    p.add_argument("--max-qps", type=int, default=200_000,
                   help="sizes the never-repeated query files: duration x this many lines (default %(default)s)")
    p.add_argument("--no-latency", action="store_true", help="skip dnsperf -v (no p50/p99; a little less dnsperf CPU)")
    p.add_argument("--startup-timeout", type=float, default=120, help="seconds a server may take to load the list")
    p.add_argument("--out", metavar="FILE", help="also write the markdown table here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs) and print its path")
    args = p.parse_args(argv)
    args.mix_list = [m for m in args.mixes.split(",") if m]
    args.peer_list = [] if args.peers == "none" else [x for x in args.peers.split(",") if x]
    for m in args.mix_list:
        if m not in MIXES:
            p.error(f"unknown mix {m!r}; choose from {', '.join(MIXES)}")
    for x in args.peer_list:
        if x not in PEERS:
            p.error(f"unknown peer {x!r}; choose from {', '.join(PEERS)}")
    if args.duration <= 0 or args.repeat < 1 or args.workers < 1:
        p.error("--duration, --repeat and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [b for b in ("dnsperf", "nsd") if not binary(b)]
    if missing:
        print("make bench needs " + " and ".join(missing) + ": sudo apt-get install "
              + " ".join(APT[b] for b in missing), file=sys.stderr)
        return 2
    servers = ["sinkdns"]
    for peer in args.peer_list:
        if binary(peer):
            servers.append(peer)
        else:
            say(f"note: {peer} is not installed (apt-get install {APT[peer]}); skipped")

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background, where SIGINT is ignored
    top = Path(tempfile.mkdtemp(prefix="sinkdns-bench-"))
    results: list[Result] = []
    try:
        data = make_data(args, top)
        nsd, upstream = start_nsd(top)
        say(f"nsd upstream on {LOOPBACK}:{upstream}; servers: {', '.join(servers)}; mixes: {', '.join(data.mixes)}")
        for rnd in range(1, args.repeat + 1):
            for mix in data.mixes:
                for name in servers:
                    try:
                        results.append(measure(args, top, data, upstream, name, mix, rnd))
                    except RuntimeError as e:
                        say(f"{name} {mix}: ERROR {e}")
                        results.append(Result(name, mix, note=f"error: {str(e).splitlines()[0]}"))
        if not nsd.alive():
            say("warning: the nsd upstream exited during the runs; results are suspect")
    except KeyboardInterrupt:
        say("interrupted; stopping everything started")
        return 130
    except RuntimeError as e:  # the upstream did not start: nothing to measure against
        say(f"error: {e}")
        return 1
    finally:
        Proc.stop_all()
        if args.keep:
            say(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    source = Path(args.blocklist).name if args.blocklist else f"synthetic, {args.names} names"
    text = report(args, results, f"{source} ({len(data.names)} names for the peers)")
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
