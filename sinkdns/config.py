"""Configuration: one frozen dataclass per section, decoded strictly from TOML and overridden by flags.

Every field names the function that parses it, so the file and the command line share one parser and
one error text. Problems are collected and reported together, each naming the file and the dotted key.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from sinkdns.addresses import LOCAL
from sinkdns.errors import ConfigError

Endpoint = tuple[str, int]


def endpoint(value: Any, default_port: int | None = None) -> Endpoint:
    """`ADDR:PORT`, `[V6]:PORT`, or (with a default port) a bare IP literal; the address is normalised."""
    if not isinstance(value, str):
        raise ValueError("expected a string ADDR:PORT")
    text = value.strip()
    host, port = text, None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"expected [IPV6]:PORT, got {value!r}")
        port = rest[1:] or None
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"expected an IP address (not a host name), got {value!r}") from None
    if port is None:
        if default_port is None:
            raise ValueError(f"expected ADDR:PORT, got {value!r}")
        return str(addr), default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected a port from 0 to 65535 in {value!r}")
    return str(addr), int(port)


def format_endpoint(ep: Endpoint) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _list_of(item: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    def parse(value: Any) -> tuple:
        if isinstance(value, (str, int)):
            value = [value]
        if not isinstance(value, list):
            raise ValueError("expected a list")
        return tuple(item(v) for v in value)
    return parse


def _listen(value: Any) -> Endpoint:
    return endpoint(value)


def _upstream(value: Any) -> Endpoint:
    return endpoint(value, default_port=53)


def _ip(version: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            addr = None
        if addr is None or addr.version != version:
            raise ValueError(f"expected an IPv{version} address, got {value!r}")
        return str(addr)
    return parse


def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value!r}")
        return value
    return parse


def _seconds(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or not low <= number <= high:
            raise ValueError(f"expected seconds from {low} to {high}, got {value!r}")
        return number
    return parse


def _watch_interval(value: Any) -> float:
    seconds = _seconds(0, 3600)(value)
    if 0 < seconds < 0.1:
        raise ValueError(f"expected 0 (off) or seconds from 0.1 to 3600, got {value!r}")
    return seconds


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else _text(value)


def _domain(value: Any) -> str:
    text = _text(value).strip().rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"expected a domain name, got {value!r}") from None
    labels = text.split(".")
    if not text or any(not 0 < len(label) < 64 for label in labels) or len(text) > 253:
        raise ValueError(f"expected a domain name, got {value!r}")
    return text


def _log_level(value: Any) -> str:
    text = _text(value).lower()
    if text not in ("debug", "info", "warning", "error"):
        raise ValueError(f"expected debug, info, warning or error, got {value!r}")
    return text


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _metrics_listen(value: Any) -> Endpoint | None:
    return None if value == "off" else endpoint(value)


def _conditional(value: Any) -> tuple[tuple[str, tuple[Endpoint, ...]], ...]:
    if not isinstance(value, dict):
        raise ValueError('expected a table of domain = ["ADDR[:PORT]", ...]')
    return tuple((_domain(name), _list_of(_upstream)(servers)) for name, servers in value.items())


def _network(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(_text(value).strip()))
    except ValueError:
        raise ValueError(f"expected a network such as 10.0.0.0/8 or fd00::/8 (no host bits set), got {value!r}") from None


def _chaos(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError('expected a table of name = "text", e.g. {"version.bind" = "sinkdns"}')
    return tuple((_domain(name), _text(text)) for name, text in value.items())


def _parse(fn: Callable[[Any], Any], flag: str | None = None) -> dict:
    return {"parse": fn, "flag": flag}


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[Endpoint, ...] = field(default=(("127.0.0.1", 1053),), metadata=_parse(_list_of(_listen), "listen"))
    workers: int = field(default=1, metadata=_parse(_int(1, 64), "workers"))
    ready_file: str | None = field(default=None, metadata=_parse(_optional_text, "ready_file"))
    state_dir: str | None = field(default=None, metadata=_parse(_optional_text, "state_dir"))
    log_level: str = field(default="info", metadata=_parse(_log_level, "log_level"))
    tcp_idle_timeout: float = field(default=10.0, metadata=_parse(_seconds(0.1, 3600)))
    tcp_max_pipeline: int = field(default=100, metadata=_parse(_int(1, 65535)))
    tcp_first_timeout: float = field(default=5.0, metadata=_parse(_seconds(0.1, 3600)))
    tcp_max_connections: int = field(default=256, metadata=_parse(_int(1, 65535)))
    tcp_max_per_client: int = field(default=16, metadata=_parse(_int(1, 65535)))
    tcp_max_pending: int = field(default=64 * 1024, metadata=_parse(_int(1024, 16 * 1024 * 1024)))
    # CHAOS TXT answers, e.g. {"version.bind" = "sinkdns"}; every other CHAOS question is REFUSED.
    chaos: tuple[tuple[str, str], ...] = field(default=(), metadata=_parse(_chaos))


@dataclass(frozen=True)
class UpstreamConfig:
    servers: tuple[Endpoint, ...] = field(default=(), metadata=_parse(_list_of(_upstream), "upstream"))
    timeout: float = field(default=1.0, metadata=_parse(_seconds(0.05, 30)))
    deadline: float = field(default=2.0, metadata=_parse(_seconds(0.05, 60)))
    pool_size: int = field(default=256, metadata=_parse(_int(1, 4096)))
    conditional: tuple[tuple[str, tuple[Endpoint, ...]], ...] = field(default=(), metadata=_parse(_conditional))
    resolv_conf: str = field(default="/etc/resolv.conf", metadata=_parse(_text))
    max_inflight: int = field(default=1000, metadata=_parse(_int(1, 1_000_000)))
    rebind_protection: bool = field(default=False, metadata=_parse(_bool))
    rebind_allow: tuple[str, ...] = field(default=(), metadata=_parse(_list_of(_domain)))


@dataclass(frozen=True)
class AccessConfig:
    # Who is answered: loopback and private networks by default; ["0.0.0.0/0", "::/0"] serves the world.
    allow: tuple[str, ...] = field(default=LOCAL, metadata=_parse(_list_of(_network)))
    deny: tuple[str, ...] = field(default=(), metadata=_parse(_list_of(_network)))  # wins over allow


@dataclass(frozen=True)
class RateLimitConfig:
    qps: int = field(default=100, metadata=_parse(_int(0, 1_000_000)))  # per /32 or /64 over UDP; 0: off
    burst: int = field(default=200, metadata=_parse(_int(1, 1_000_000)))
    exempt_loopback: bool = field(default=True, metadata=_parse(_bool))
    max_clients: int = field(default=65_536, metadata=_parse(_int(1, 10_000_000)))


@dataclass(frozen=True)
class PolicyConfig:
    zones: str = field(default="./zones", metadata=_parse(_text, "zones"))
    block_ip: tuple[str, ...] = field(default=("127.0.0.1",), metadata=_parse(_list_of(_ip(4)), "block_ip"))
    block_ipv6: tuple[str, ...] = field(default=(), metadata=_parse(_list_of(_ip(6)), "block_ipv6"))
    ttl: int = field(default=60, metadata=_parse(_int(0, 86400)))
    watch_interval: float = field(default=2.0, metadata=_parse(_watch_interval))  # 0: reload on SIGHUP only
    # Names browsers look up to decide whether to bypass this resolver (Firefox's DNS-over-HTTPS canary,
    # iCloud Private Relay): answered NXDOMAIN so they keep using it.
    canaries: tuple[str, ...] = field(
        default=("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"),
        metadata=_parse(_list_of(_domain)),
    )


@dataclass(frozen=True)
class CacheConfig:
    size: int = field(default=100_000, metadata=_parse(_int(0, 100_000_000)))
    min_ttl: int = field(default=0, metadata=_parse(_int(0, 86400)))
    max_ttl: int = field(default=86400, metadata=_parse(_int(0, 604800)))
    servfail_ttl: int = field(default=5, metadata=_parse(_int(0, 5)))


@dataclass(frozen=True)
class MetricsConfig:
    listen: Endpoint | None = field(default=("127.0.0.1", 9153), metadata=_parse(_metrics_listen, "metrics"))
    rule_series: int = field(default=10_000, metadata=_parse(_int(0, 1_000_000)))


@dataclass(frozen=True)
class QueryLogConfig:
    path: str | None = field(default=None, metadata=_parse(_optional_text, "query_log"))
    max_bytes: int = field(default=100 * 1024 * 1024, metadata=_parse(_int(4096, 1 << 40)))
    backups: int = field(default=5, metadata=_parse(_int(0, 1000)))
    truncate_clients: bool = field(default=False, metadata=_parse(_bool))
    queue_size: int = field(default=10_000, metadata=_parse(_int(1, 10_000_000)))


@dataclass(frozen=True)
class BlockPageConfig:
    listen: tuple[Endpoint, ...] = field(default=(("127.0.0.1", 8080),), metadata=_parse(_list_of(_listen), "block_page"))
    tls_listen: tuple[Endpoint, ...] = field(default=(), metadata=_parse(_list_of(_listen), "block_page_tls"))
    operator: str = field(default="sinkdns", metadata=_parse(_text))
    operator_url: str = field(default="", metadata=_parse(_text))
    contact: str = field(default="", metadata=_parse(_text))
    reason: str = field(default="This site is blocked by the operator of this DNS resolver.", metadata=_parse(_text))
    policy_url: str = field(default="", metadata=_parse(_text))


@dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    access: AccessConfig = AccessConfig()
    ratelimit: RateLimitConfig = RateLimitConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    policy: PolicyConfig = PolicyConfig()
    cache: CacheConfig = CacheConfig()
    metrics: MetricsConfig = MetricsConfig()
    querylog: QueryLogConfig = QueryLogConfig()
    blockpage: BlockPageConfig = BlockPageConfig()


def read_file(path: str) -> bytes:
    """The config file's bytes, as `load` would judge them."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


def _toml(path: str, data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def load(path: str | None, flags: dict[str, Any] | None = None, data: bytes | None = None) -> Config:
    """Build the configuration from a TOML file (optional) and flags; flags replace the file's values.

    `flags` maps a flag name (the `flag` metadata of a field, e.g. "listen") to its raw value. `data`, when
    given, is the file's content already read, so a reload judges exactly the bytes it read.
    """
    problems: list[str] = []
    raw: dict[str, Any] = {}
    origin = path or "defaults"
    if path is not None:
        raw = _toml(path, read_file(path) if data is None else data)
    sections = {f.name: f.default for f in fields(Config)}
    for name in raw:
        if name not in sections:
            problems.append(f"{origin}: unknown section [{name}] (expected one of {', '.join(sections)})")
    built = {}
    for name, default in sections.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{origin}: {name}: expected a table [{name}]")
            table = {}
        built[name] = _section(default, table, flags or {}, origin, name, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**built)


def _section(default: Any, table: dict, flags: dict, origin: str, section: str, problems: list[str]) -> Any:
    known = {f.name: f for f in fields(default)}
    values = {}
    for key, value in table.items():
        f = known.get(key)
        if f is None:
            problems.append(f"{origin}: {section}.{key}: unknown key (expected one of {', '.join(known)})")
            continue
        try:
            values[key] = f.metadata["parse"](value)
        except ValueError as exc:
            problems.append(f"{origin}: {section}.{key}: {exc}")
    for f in known.values():
        flag = f.metadata.get("flag")
        if flag is not None and flags.get(flag) is not None:
            try:
                values[f.name] = f.metadata["parse"](flags[flag])
            except ValueError as exc:
                problems.append(f"--{flag.replace('_', '-')}: {exc}")
    return replace(default, **values)


def resolv_conf_upstreams(listening: tuple[Endpoint, ...], path: str = "/etc/resolv.conf") -> tuple[Endpoint, ...]:
    """The system's name servers, minus any address:port sinkdns itself listens on (no forwarding loop)."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        ep = endpoint(parts[1].split("%")[0], default_port=53)
                    except ValueError:
                        continue
                    if not _listens_on(ep, listening):
                        found.append(ep)
    except OSError:
        return ()
    return tuple(found)


def _listens_on(ep: Endpoint, listening: tuple[Endpoint, ...]) -> bool:
    addr = ipaddress.ip_address(ep[0])
    for host, port in listening:
        if port != ep[1]:
            continue
        mine = ipaddress.ip_address(host)
        if mine == addr or (mine.is_unspecified and mine.version == addr.version) or (mine.is_loopback and addr.is_loopback):
            return True
    return False


def default_state_dir() -> str:
    """`$XDG_STATE_HOME/sinkdns`, or /var/lib/sinkdns for root."""
    if os.geteuid() == 0:
        return "/var/lib/sinkdns"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "sinkdns")
