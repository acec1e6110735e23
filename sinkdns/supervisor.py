"""`--workers N`: N processes answer on the same addresses (SO_REUSEPORT), each with its own event loop.

The supervisor resolves port 0 once so every worker binds the same port, starts the workers as fresh
interpreters (no fork of a running event loop), waits until each reports ready, writes the ready file,
forwards SIGTERM, restarts a worker that dies, and collects every worker's counts on request so metrics
are the sum of all of them. On SIGHUP it re-reads the config file once and asks every worker over its
control socket to reload, with the bytes it accepted (reconfigure.py), so all processes run one config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from dataclasses import replace

from sinkdns.app import CONTROL_LINE_LIMIT, policy_holder, ready_fields, write_ready_file
from sinkdns.config import Config, format_endpoint
from sinkdns.listen import bind_pair
from sinkdns.policy.collector import settle_collector
from sinkdns.policy.watch import ZonesWatcher, included_paths
from sinkdns.reconfigure import ConfigFile, apply_shared, reread
from sinkdns.services import open_block_page, ready_info
from sinkdns.metrics.collector import make_registry
from sinkdns.metrics.http import SERVING, STARTING, STOPPING, Health, on_loop, start_metrics_server
from sinkdns.metrics.snapshot import by_worker

log = logging.getLogger("sinkdns.supervisor")

READY_TIMEOUT = 120.0
RESTART_DELAY = 1.0
STOP_TIMEOUT = 8.0


class WorkerFailed(RuntimeError):
    """A worker exited before it was ready."""


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()
        self.config: bytes | None = None  # config file bytes accepted since start-up, sent again after a restart

    async def start(self, argv: list[str]) -> dict:
        parent_end, child_end = socket.socketpair()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sinkdns", *argv, "--worker-control", str(child_end.fileno()),
                pass_fds=(child_end.fileno(),),
            )
        finally:
            child_end.close()
        self.reader, self.writer = await asyncio.open_unix_connection(sock=parent_end, limit=CONTROL_LINE_LIMIT)
        async with asyncio.timeout(READY_TIMEOUT):
            line = await self.reader.readline()
        if not line:
            await self.proc.wait()
            raise WorkerFailed(f"worker {self.index} exited with {self.proc.returncode} before it was ready")
        if self.config is not None:
            self._send_reload(self.config)
        return json.loads(line)["ready"]

    async def snapshot(self) -> dict | None:
        """The worker's counts, or None if it is gone (it is being restarted)."""
        async with self.lock:
            try:
                self.writer.write(b'{"op": "snapshot"}\n')
                async with asyncio.timeout(5):
                    line = await self.reader.readline()
                return json.loads(line)["snapshot"] if line else None
            except (OSError, TimeoutError, ValueError, KeyError):
                return None

    def reload(self, config: bytes | None) -> None:
        """Reload the policy, first applying `config` (file bytes the supervisor accepted) when given."""
        if config is not None:
            self.config = config
        if self.writer is not None and not self.writer.is_closing():
            self._send_reload(config)

    def _send_reload(self, config: bytes | None) -> None:
        text = None if config is None else config.decode()  # accepted, so UTF-8
        self.writer.write(json.dumps({"op": "reload", "config": text}).encode() + b"\n")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)


def worker_argv(config_path: str | None, flags: dict, listen: tuple, workers: int) -> list[str]:
    """The `serve` command line for a worker: the operator's flags, the resolved listen addresses, and
    the number of workers (a worker spreads queries over that many sockets; it never supervises)."""
    argv = ["serve"]
    if config_path:
        argv += ["--config", config_path]
    skip = {"listen", "workers", "ready_file"}
    for name, value in flags.items():
        if value is None or name in skip:
            continue
        for item in value if isinstance(value, list) else [value]:
            argv += [f"--{name.replace('_', '-')}", str(item)]
    for ep in listen:
        argv += ["--listen", format_endpoint(ep)]
    return argv + ["--workers", str(workers)]


async def supervise(config: Config, config_file: ConfigFile | None, flags: dict) -> None:
    """Run `config.server.workers` workers until SIGTERM or SIGINT."""
    probes = [bind_pair(ep, reuse_port=True) for ep in config.server.listen]
    listen = tuple((ep[0], udp.getsockname()[1]) for ep, (udp, _) in zip(config.server.listen, probes))
    argv = worker_argv(config_file and config_file.path, flags, listen, config.server.workers)
    workers = [Worker(i) for i in range(config.server.workers)]
    loop = asyncio.get_running_loop()
    # A SIGHUP while the workers start must not end the supervisor: it is remembered and served once
    # everything is up (the workers load the files as they are by then anyway).
    early_reloads: list[int] = []
    loop.add_signal_handler(signal.SIGHUP, early_reloads.append, signal.SIGHUP)
    state = STARTING

    async def gather() -> dict:
        snapshots = await asyncio.gather(*(w.snapshot() for w in workers))
        return by_worker({w.index: s for w, s in zip(workers, snapshots) if s is not None})

    def health() -> Health:
        missing = [f"worker {w.index} restarting" for w in workers if w.proc is None or w.proc.returncode is not None]
        return Health(state, tuple(missing))

    metrics = None
    if config.metrics.listen is not None:
        metrics = await start_metrics_server(config.metrics.listen, make_registry(on_loop(gather, loop)), health)
    policy = policy_holder(config)  # the block page judges Host names with the policy the workers enforce
    settle_collector()  # its policy, like a worker's, out of the collector's walks
    block_page, _ = await open_block_page(config, policy)
    # The probes prove the addresses usable and pick the ports. They close only now, once this process
    # has bound everything of its own (an ephemeral port could otherwise land on a chosen one), and
    # before any worker binds: an unread socket in the SO_REUSEPORT group would take its share of queries.
    for udp, tcp in probes:
        udp.close()
        tcp.close()
    await asyncio.gather(*(w.start(argv) for w in workers))
    stop = asyncio.Event()
    state = SERVING
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task] = set()
    watcher = None
    running = config

    async def reload_all(accepted: bytes | None = None) -> None:
        for w in workers:
            w.reload(accepted)
        await policy.reload()

    def reload() -> None:
        """SIGHUP: the config file once for every process (its live keys), then the policy everywhere."""
        nonlocal running
        accepted = None
        found = reread(config_file, running) if config_file is not None else None
        if found is not None:
            running, accepted = found
            apply_shared(running, policy, watcher)
        task = loop.create_task(reload_all(accepted))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    if early_reloads:
        reload()
    if config.policy.watch_interval:
        watcher = ZonesWatcher(config.policy.zones, reload_all, config.policy.watch_interval,
                               extra_paths=lambda: included_paths(policy))
        watcher.start()
    info = ready_info([format_endpoint(ep) for ep in listen], metrics and metrics.address, block_page)
    log.info("ready", extra={**ready_fields(info, []), "workers": len(workers)})
    if config.server.ready_file:
        write_ready_file(config.server.ready_file, info)
    keepers = [loop.create_task(_keep_alive(w, argv, stop)) for w in workers]
    await stop.wait()
    log.info("stopping")
    state = STOPPING
    if watcher is not None:
        await watcher.stop()
    for w in workers:
        w.signal(signal.SIGTERM)
    await asyncio.wait(keepers, timeout=STOP_TIMEOUT)
    for w in workers:
        w.signal(signal.SIGKILL)
    if metrics is not None:
        await metrics.close()
    if block_page is not None:
        await block_page.close()


async def _keep_alive(worker: Worker, argv: list[str], stop: asyncio.Event) -> None:
    """Restart the worker whenever it dies, until the supervisor stops."""
    while True:
        code = await worker.proc.wait()
        if stop.is_set():
            return
        log.error("worker died; restarting", extra={"worker": worker.index, "exit_code": code})
        await asyncio.sleep(RESTART_DELAY)
        try:
            await worker.start(argv)
        except (WorkerFailed, TimeoutError, OSError) as exc:
            log.error("worker restart failed", extra={"worker": worker.index, "error": str(exc)})
