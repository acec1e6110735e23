"""SIGHUP re-reads the config file: what can change live changes between two queries, the rest waits.

The file is read again and judged by the start-up parser, flags still replacing its values. A file that
cannot be read, is not TOML or holds a bad value changes nothing: one error line names the file and the
key or line, the running config stays in force, and the policy files reload as on any SIGHUP.

Live keys, swapped on the event loop between two queries (the policy then reloads with them):
  [server] log_level, chaos
  [access] allow, deny
  [ratelimit] qps, burst, exempt_loopback, max_clients (a changed section starts the buckets afresh)
  [policy] zones, block_ip, block_ipv6, ttl, canaries
Every other key is bound at start-up: a change is listed in one warning line and the running value
stays until a restart. That is [server] listen, workers, ready_file, state_dir and the tcp_* bounds
(sockets and the per-connection counts), [policy] watch_interval, and the whole of [upstream] (the
socket pool and its health state), [cache] (its entries), [metrics] (the listener, the series already
made), [querylog] (the open file and its thread) and [blockpage] (its listeners, its CA named after the
operator, and the operator's facts it shows beside the DNS answers' EDE text).

With `--workers N` the supervisor reads and judges the file once and sends the bytes it accepted to
every worker (and to a worker restarted later), so all processes run one config or all keep the old one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Mapping

from sinkdns import config as configuration
from sinkdns.addresses import AccessList
from sinkdns.config import Config
from sinkdns.errors import ConfigError
from sinkdns.policy.customers import Defaults
from sinkdns.policy.holder import PolicyHolder
from sinkdns.policy.watch import ZonesWatcher
from sinkdns.resolvers.guard import chaos_records
from sinkdns.resolvers.ratelimit import limiter_for

if TYPE_CHECKING:
    from sinkdns.app import App

log = logging.getLogger("sinkdns.config")

LIVE_KEYS = frozenset({
    "server.log_level", "server.chaos",
    "access.allow", "access.deny",
    "ratelimit.qps", "ratelimit.burst", "ratelimit.exempt_loopback", "ratelimit.max_clients",
    "policy.zones", "policy.block_ip", "policy.block_ipv6", "policy.ttl", "policy.canaries",
})


@dataclass(frozen=True)
class ConfigFile:
    """The file a process was started with, and the flags that replace its values."""

    path: str
    flags: Mapping[str, Any]

    def parse(self, data: bytes) -> Config:
        """The config `data` (this file's bytes) gives with the flags; ConfigError names file and key."""
        return configuration.load(self.path, dict(self.flags), data)


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ, in the order of the config's sections."""
    out = []
    for section in fields(Config):
        before, after = getattr(old, section.name), getattr(new, section.name)
        out += [f"{section.name}.{f.name}" for f in fields(before) if getattr(before, f.name) != getattr(after, f.name)]
    return out


def merge(running: Config, wanted: Config) -> Config:
    """The config to run from now on: `wanted`'s live keys, `running`'s values for all others."""
    sections = {}
    for section in fields(Config):
        before, after = getattr(running, section.name), getattr(wanted, section.name)
        live = {f.name: getattr(after, f.name) for f in fields(before) if f"{section.name}.{f.name}" in LIVE_KEYS}
        sections[section.name] = replace(before, **live)
    return Config(**sections)


def reread(file: ConfigFile, running: Config) -> tuple[Config, bytes] | None:
    """Read and judge the file again, saying in one log line what happens: the config to run and the
    bytes it came from, or None (logged as an error) when the running config must stay."""
    try:
        data = configuration.read_file(file.path)
        wanted = file.parse(data)
    except ConfigError as exc:
        log.error("config not reloaded; the running config stays in force",
                  extra={"file": file.path, "error": str(exc)})
        return None
    config = merge(running, wanted)
    applied = ",".join(changed_keys(running, config)) or "none"
    restart = [key for key in changed_keys(running, wanted) if key not in LIVE_KEYS]
    if restart:
        log.warning("config reloaded; changed keys that need a restart keep their running values",
                    extra={"file": file.path, "restart": ",".join(restart), "applied": applied})
    else:
        log.info("config reloaded", extra={"file": file.path, "applied": applied})
    return config, data


def received(file: ConfigFile, running: Config, data: bytes) -> Config | None:
    """The config to run from bytes a supervisor already read and judged (and logged about), or None."""
    try:
        return merge(running, file.parse(data))
    except ConfigError as exc:  # the supervisor accepted these bytes: only a worker's own flags could fail them
        log.error("config not applied; the running config stays in force", extra={"file": file.path, "error": str(exc)})
        return None


def apply_shared(config: Config, holder: PolicyHolder, watcher: ZonesWatcher | None) -> None:
    """What every process applies, supervisor included: where the policy is read, the defaults it is
    built with (in force at the next load), and the log level."""
    holder.zones_dir = config.policy.zones
    holder.defaults = Defaults.from_config(config.policy, config.blockpage)
    if watcher is not None:
        watcher.zones_dir = config.policy.zones
    logging.getLogger().setLevel(config.server.log_level.upper())


def apply(app: App, config: Config, watcher: ZonesWatcher | None) -> None:
    """Swap the live settings into a running App. Synchronous, so no query sees half of them; a stage
    reads each setting once per query."""
    running = app.config
    apply_shared(config, app.policy, watcher)
    app.policy_stage.configure(config.policy, config.blockpage)
    guard = app.guard
    if config.access != running.access:
        guard.access = AccessList(config.access.allow, config.access.deny)
    if config.ratelimit != running.ratelimit:
        limiter = limiter_for(config.ratelimit)
        if limiter is not None and app.limiter is not None:  # counters on /metrics only ever grow
            limiter.slipped, limiter.dropped = app.limiter.slipped, app.limiter.dropped
        app.limiter = guard.limiter = limiter
    if config.server.chaos != running.server.chaos:
        guard.chaos = chaos_records(dict(config.server.chaos))
    app.config = config
