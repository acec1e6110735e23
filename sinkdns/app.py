"""The composition root: builds the chain of stages in order, opens the listeners, runs until told to stop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from typing import Callable

from sinkdns.addresses import AccessList
from sinkdns.config import Config, format_endpoint, resolv_conf_upstreams
from sinkdns.errors import ConfigError
from sinkdns.listen import bind_pair
from sinkdns.metrics.collector import make_registry
from sinkdns.metrics.http import SERVING, STARTING, STOPPING, Health, on_loop, start_metrics_server
from sinkdns.metrics.policy_facts import HolderFacts
from sinkdns.metrics.snapshot import take_snapshot
from sinkdns.querylog import QueryLog
from sinkdns.reconfigure import ConfigFile, apply, received, reread
from sinkdns.model import Handler
from sinkdns.services import open_block_page, ready_info
from sinkdns.resolvers.cache import CacheStage
from sinkdns.resolvers.forward import ForwardStage
from sinkdns.resolvers.guard import GuardStage
from sinkdns.resolvers.instrument import InstrumentStage, QueryStats
from sinkdns.resolvers.local import LocalStage
from sinkdns.resolvers.policy import PolicyStage
from sinkdns.resolvers.ratelimit import limiter_for
from sinkdns.resolvers.rebind import RebindFilter
from sinkdns.policy.collector import settle_collector
from sinkdns.policy.customers import Defaults
from sinkdns.policy.holder import PolicyHolder
from sinkdns.policy.watch import ZonesWatcher, included_paths, scan
from sinkdns.transport.dispatch import Dispatcher
from sinkdns.transport.packetcache import PacketCache
from sinkdns.transport.tcp import TcpConnection, TcpLimits
from sinkdns.transport.spread import spread_evenly
from sinkdns.transport.udp import UdpServer
from sinkdns.upstream.group import UpstreamGroup
from sinkdns.upstream.health import Upstream
from sinkdns.upstream.pool import UdpPool

log = logging.getLogger("sinkdns")

DRAIN_SECONDS = 4.0
# Longest line on the supervisor's control socket: a snapshot with 10,000 rule series is about 1 MB, far
# past asyncio's 64 KiB default, which would make a busy worker's counts vanish from /metrics.
CONTROL_LINE_LIMIT = 64 * 1024 * 1024
PACKET_CACHE_SIZE = 50_000


def upstream_endpoints(config: Config) -> tuple:
    """The configured upstreams, or the system's; refuses to guess a public fallback."""
    servers = config.upstream.servers or resolv_conf_upstreams(config.server.listen, config.upstream.resolv_conf)
    if not servers:
        raise ConfigError([
            f"no usable upstream: {config.upstream.resolv_conf} names none that is not sinkdns itself; "
            "give one with --upstream ADDR[:PORT] or [upstream] servers in the config"
        ])
    return servers


def policy_holder(config: Config) -> PolicyHolder:
    """The policy of `config.policy.zones`, loaded; a failing file is logged and the rest serves."""
    holder = PolicyHolder(config.policy.zones, Defaults.from_config(config.policy, config.blockpage))
    holder.load()
    return holder


class App:
    """One sinkdns process: the chain, its listeners and its upstream sockets."""

    def __init__(self, config: Config, clock=time.monotonic, worker: bool = False) -> None:
        self.config = config
        self.worker = worker  # a worker of a supervisor: shares the port, leaves HTTP to the supervisor
        self.clock = clock
        self.stats = QueryStats(config.metrics.rule_series)
        ql = config.querylog
        self.querylog = QueryLog(ql.path, ql.max_bytes, ql.backups, ql.truncate_clients, ql.queue_size) if ql.path else None
        self.pool = UdpPool(config.upstream.pool_size)
        self.upstreams = [Upstream(ep) for ep in upstream_endpoints(config)]
        self.all_upstreams = list(self.upstreams)  # the default ones and those of conditional domains
        self.policy = policy_holder(config)
        self.policy_facts = HolderFacts(self.policy)
        self.block_page = None
        self.block_page_counts = None  # the block page's view counts, when this process serves it
        self.state = STARTING
        self.metrics_server = None
        self.chain = self.build_chain()
        self.dispatcher = Dispatcher(self.chain, self.stats, clock)
        s = config.server
        # One set of TCP bounds for all listeners of this process (per worker with --workers).
        self.tcp_limits = TcpLimits(
            s.tcp_max_connections, s.tcp_max_per_client, s.tcp_first_timeout, s.tcp_idle_timeout,
            s.tcp_max_pipeline, s.tcp_max_pending,
        )
        # The query log needs every query to pass the chain; without it, repeated UDP questions skip it.
        self.packets = None
        if self.querylog is None:
            self.packets = PacketCache(PACKET_CACHE_SIZE, self.policy, self.stats, self.cache.stats, self.unlimited, clock)
        self.udp: list[tuple[asyncio.DatagramTransport, UdpServer]] = []
        self.tcp: list[asyncio.Server] = []
        self.addresses: list[str] = []

    def _group(self, upstreams: list[Upstream]) -> UpstreamGroup:
        up, cache = self.config.upstream, self.config.cache
        return UpstreamGroup(upstreams, self.pool, up.timeout, up.deadline, cache.min_ttl, cache.max_ttl, self.clock)

    def build_chain(self) -> Handler:
        """The order of the stages is their meaning; each line says why a stage sits where it does."""
        config = self.config
        conditional = {}
        for domain, servers in config.upstream.conditional:
            upstreams = [Upstream(ep) for ep in servers]
            self.all_upstreams += upstreams
            conditional[domain] = self._group(upstreams)
        # forward: last, it answers whatever nobody before it could.
        up = config.upstream
        rebind = RebindFilter(up.rebind_allow) if up.rebind_protection else None
        self.forward = ForwardStage(self._group(self.upstreams), conditional, self.clock, up.max_inflight, rebind)
        # cache: before forward, so a hit never leaves the process.
        self.cache = CacheStage(self.forward, config.cache.size, config.cache.servfail_ttl, self.clock)
        # policy: before the cache, so a policy change applies to cached names at once, and around it,
        # so CNAME targets and addresses of cached and forwarded answers are judged too.
        policy = PolicyStage(self.cache, self.policy, config.policy, config.blockpage)
        # local: names that must never leave (localhost, .onion, private reverse zones) are answered
        # before policy and cache, unless the operator forwards them to a server of their own.
        local = LocalStage(policy, tuple(conditional))
        # guard: bad queries, other opcodes and classes are answered before any real work.
        self.limiter = limiter_for(config.ratelimit)
        access = AccessList(config.access.allow, config.access.deny)
        guard = GuardStage(local, access, self.limiter, dict(config.server.chaos))
        self.guard, self.policy_stage = guard, policy  # their settings are swapped on SIGHUP (reconfigure.py)
        # instrument: first, so every answer, whoever wrote it, is counted and timed.
        return InstrumentStage(guard, self.stats, self.clock, self.querylog)

    def unlimited(self, host: str) -> bool:
        """Whether answers to `host` skip the rate limit (loopback by default), so may skip the chain."""
        return self.limiter is None or self.limiter.prefix(host) is None

    def health(self) -> Health:
        """For /healthz: serving or not, and the parts that are degraded."""
        now = self.clock()
        degraded = [f"upstream {u.label} backed off" for u in self.all_upstreams if not u.healthy(now)]
        degraded += self.policy_facts.degraded
        return Health(self.state, tuple(degraded))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.config.metrics.listen is not None and not self.worker:  # first: /healthz says "starting"
            registry = make_registry(on_loop(self.snapshot, loop))
            self.metrics_server = await start_metrics_server(self.config.metrics.listen, registry, self.health)
        if not self.worker:
            self.block_page, self.block_page_counts = await open_block_page(self.config, self.policy)
        if self.querylog is not None:
            self.querylog.start()
        server = self.config.server
        # Bound before the upstream sockets are opened, so none of those can take a port a supervisor has
        # just chosen; served only once they exist, since the first query may arrive at once.
        bound = [bind_pair(ep, reuse_port=self.worker) for ep in server.listen]
        families = {socket.AF_INET6 if u.family_v6 else socket.AF_INET for u in self.all_upstreams}
        await self.pool.open(families)
        for udp_sock, tcp_sock in bound:
            if self.worker:
                spread_evenly(udp_sock, server.workers)
            self.udp.append(
                await loop.create_datagram_endpoint(lambda: UdpServer(self.dispatcher, self.packets), sock=udp_sock)
            )
            tcp = await loop.create_server(
                lambda: TcpConnection(self.dispatcher, self.tcp_limits),
                sock=tcp_sock,
            )
            self.tcp.append(tcp)
            host, port = udp_sock.getsockname()[:2]
            self.addresses.append(format_endpoint((host, port)))
        self.state = SERVING

    def snapshot(self) -> dict:
        """This process's counts as plain data, for the metrics endpoint (summed across workers)."""
        return take_snapshot(self)

    def ready_info(self) -> dict:
        metrics = self.metrics_server.address if self.metrics_server is not None else None
        return ready_info(self.addresses, metrics, self.block_page)

    async def stop(self) -> None:
        """Stop listening, answer what is in flight (a few seconds at most), then release the sockets."""
        self.state = STOPPING
        for _, protocol in self.udp:  # UDP sockets stay open for the answers still to come
            protocol.drain()
        for server in self.tcp:  # no new connections; the open ones get what they asked
            server.close()
        await self.dispatcher.drain(DRAIN_SECONDS)
        for transport, _ in self.udp:
            transport.close()
        self.pool.close()
        if self.querylog is not None:
            await asyncio.to_thread(self.querylog.close)
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.block_page is not None:
            await self.block_page.close()


def ready_fields(info: dict, upstreams: list[Upstream]) -> dict:
    """The ready line's fields: every bound address, and the upstreams in use."""
    fields = {key: ",".join(value) if isinstance(value, list) else value for key, value in info.items() if value}
    if upstreams:
        fields["upstreams"] = ",".join(u.label for u in upstreams)
    return fields


def write_ready_file(path: str, info: dict) -> None:
    """Written whole or not at all, so a reader never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(tmp, path)


async def serve(config: Config, control_fd: int | None = None, config_file: ConfigFile | None = None) -> None:
    """Run one process until SIGTERM or SIGINT; SIGHUP re-reads `config_file` (reconfigure.py), then the policy.

    With `control_fd` this process is a worker of a supervisor (see supervisor.py): it reports readiness
    and answers requests for its counts over that socket instead of writing the ready file, and takes a
    new config only as bytes its supervisor read and accepted, so every worker runs the same one.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task] = set()
    watcher = None

    def reload(accepted: bytes | None = None) -> None:
        """Swap in the live keys of a new config if there is one, then reload the policy."""
        new = None
        if accepted is not None:
            new = received(config_file, app.config, accepted)
        elif config_file is not None and control_fd is None:
            found = reread(config_file, app.config)
            new = found[0] if found else None
        if new is not None:
            apply(app, new, watcher)
        task = loop.create_task(app.policy.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # Before the start-up policy load, which can take seconds: a SIGHUP meanwhile must not end the
    # process. The callback runs once the loop runs again, after App() returned, and reloads what changed.
    loop.add_signal_handler(signal.SIGHUP, reload)
    interval = config.policy.watch_interval if control_fd is None else 0  # workers: the supervisor watches
    baseline = scan(config.policy.zones) if interval else None  # before the load: a change during it is seen
    app = App(config, worker=control_fd is not None)
    settle_collector()  # everything loaded so far, the policy above all, out of the collector's walks
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    if interval:
        watcher = ZonesWatcher(app.policy.zones_dir, app.policy.reload, interval,
                               extra_paths=lambda: included_paths(app.policy))
        watcher.start(baseline)
    info = app.ready_info()
    if control_fd is not None:
        control = await worker_control(control_fd, info, app.snapshot, reload, stop)
    else:
        log.info("ready", extra=ready_fields(info, app.upstreams))
        if config.server.ready_file:
            write_ready_file(config.server.ready_file, info)
    await stop.wait()
    log.info("stopping")
    if watcher is not None:
        await watcher.stop()
    await app.stop()
    if control_fd is not None:
        control.cancel()


async def worker_control(fd: int, info: dict, snapshot, reload: Callable[[bytes | None], None],
                         stop: asyncio.Event) -> asyncio.Task:
    """Tell the supervisor this worker is ready, then answer its requests (one JSON object per line):
    `snapshot` (the counts, answered) and `reload` (with the config text the supervisor accepted, or null)."""
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd), limit=CONTROL_LINE_LIMIT)
    writer.write(json.dumps({"ready": info}).encode() + b"\n")

    async def serve_requests() -> None:
        while line := await reader.readline():
            request = json.loads(line)
            op = request.get("op")
            if op == "snapshot":
                writer.write(json.dumps({"snapshot": snapshot()}).encode() + b"\n")
            elif op == "reload":
                text = request.get("config")
                reload(None if text is None else text.encode())
        stop.set()  # the supervisor went away: a worker without one must not linger

    return asyncio.get_running_loop().create_task(serve_requests())
