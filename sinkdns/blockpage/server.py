"""The block-page host: answers every request on its HTTP and HTTPS ports with the page for the name asked.

HTTP parsing is aiohttp's (a C parser, kept up to date by others), used at its lowest level: one handler
for every method and path, no router that could answer 404 or redirect. This module decides the status,
headers and body; `render` makes the body, `connection` bounds the connections, `tls` the certificates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from dataclasses import dataclass

from aiohttp import web

from sinkdns.blockpage.ca import load_or_create
from sinkdns.blockpage.connection import ConnectionGate
from sinkdns.blockpage.facts import Lookup, Operator
from sinkdns.blockpage.host import BadHost, host_name
from sinkdns.blockpage.render import Pages, about_json, about_values, blocked_json, blocked_values
from sinkdns.blockpage.tls import LeafIssuer, server_context
from sinkdns.config import BlockPageConfig, Endpoint, format_endpoint
from sinkdns.listen import BindError

log = logging.getLogger("sinkdns.blockpage")

ALLOWED = ("GET", "HEAD")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Server": "sinkdns",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for a port that faces hostile clients; the defaults suit a public block page."""

    max_connections: int = 1000  # open at once, TLS handshakes included; more are reset
    header_timeout: float = 10.0  # a request head must arrive this soon after connecting or the last answer
    lifetime: float = 60.0  # no connection lives longer, however busy (slow readers, pipelining)
    max_line: int = 8190  # request line and each header line, in bytes
    max_headers: int = 64  # browsers send about 20


class BlockPageStats:
    """Pages served, by (customer id or "none", "http" or "https"): plain ints the metrics collector reads.

    The customer comes from the policy, never from the request, so the label set is as small as the policy.
    """

    def __init__(self) -> None:
        self.views: dict[tuple[str, str], int] = {}

    def count(self, customer: str, protocol: str) -> None:
        key = (customer, protocol)
        self.views[key] = self.views.get(key, 0) + 1


class BlockPageHandler:
    """Turns one request into the blocked page (451), the host's own page (200), 405 or 400."""

    def __init__(self, lookup: Lookup, operator: Operator, pages: Pages, stats: BlockPageStats) -> None:
        self.lookup = lookup
        self.operator = operator
        self.pages = pages
        self.stats = stats

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return self.respond(request)
        except Exception:
            log.exception("block page failed")
            return _bad(500, "the block page failed; the operator's logs say why")

    def respond(self, request: web.BaseRequest) -> web.Response:
        if request.version < (1, 0):
            return _bad(400, "HTTP/1.0 or later, please")
        hosts = request.headers.getall("Host", [])
        if len(hosts) > 1:
            return _bad(400, "more than one Host header")
        if not hosts and request.version >= (1, 1):
            return _bad(400, "an HTTP/1.1 request needs a Host header")
        if request.body_exists:
            return _bad(400, "this server takes no request bodies")
        try:
            host = host_name(hosts[0] if hosts else "")
        except BadHost as exc:
            return _bad(400, str(exc))
        facts = self.lookup(host) if host else None
        refused = "" if request.method in ALLOWED else request.method
        self.stats.count(facts.customer if facts else "none", "https" if request.secure else "http")
        headers = dict(SECURITY_HEADERS, Vary="Accept")
        if refused:
            headers["Allow"] = ", ".join(ALLOWED)
        if facts is not None and self.operator.url:
            headers["Link"] = f'<{self.operator.url}>; rel="blocked-by"'
        status = 405 if refused else 451 if facts is not None else 200
        if wants_json(request.headers.get("Accept", "")):
            body = blocked_json(host, facts, self.operator) if facts is not None else about_json(host, self.operator)
            return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
        if facts is not None:
            page = self.pages.blocked.render(blocked_values(host, facts, self.operator, refused))
        else:
            page = self.pages.about.render(about_values(host, self.operator, refused))
        return web.Response(status=status, text=page, content_type="text/html", charset="utf-8", headers=headers)


def wants_json(accept: str) -> bool:
    """True when the client ranks application/json at least as high as text/html; browsers never list JSON."""
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = item.split(";")
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        name = media.strip().lower()
        weights[name] = max(weights.get(name, 0.0), weight)
    json_weight = weights.get("application/json", 0.0)
    return json_weight > 0 and json_weight >= weights.get("text/html", 0.0)


def _bad(status: int, why: str) -> web.Response:
    """A short plain-text refusal that reflects nothing the client sent, and closes the connection."""
    response = web.Response(status=status, text=f"{status}: {why}\n", content_type="text/plain", charset="utf-8",
                            headers=SECURITY_HEADERS)
    response.force_close()
    return response


class _ClientFaults(logging.LoggerAdapter):
    """aiohttp logs a malformed request with `logger.exception`. That is the client's fault, and a scanner must
    not be able to fill the log with errors, so everything aiohttp says goes out at DEBUG; failures of our
    own handler are logged by the handler itself."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class BlockPageServer:
    """The running block page: its bound addresses, and how to stop it."""

    def __init__(self, http: web.Server, gate: ConnectionGate, issuer: LeafIssuer | None) -> None:
        self.http = http
        self.gate = gate
        self.issuer = issuer
        self.addresses: list[str] = []
        self.tls_addresses: list[str] = []
        self._servers: list[asyncio.Server] = []
        self._tls_sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task] = []

    async def listen(self, ep: Endpoint, reuse_port: bool) -> None:
        """Serve plain HTTP on `ep` (port 0 picks a free port)."""
        sock = _bind(ep, reuse_port)
        server = await asyncio.get_running_loop().create_server(self.gate.factory(self.http), sock=sock)
        self._servers.append(server)
        self.addresses.append(format_endpoint(sock.getsockname()[:2]))

    def listen_tls(self, ep: Endpoint, tls: ssl.SSLContext, reuse_port: bool) -> None:
        """Serve HTTPS on `ep`; the gate accepts, so handshakes count against the connection limit."""
        sock = _bind(ep, reuse_port)
        self._tls_sockets.append(sock)
        self._accepting.append(asyncio.get_running_loop().create_task(self.gate.accept_tls(sock, self.http, tls)))
        self.tls_addresses.append(format_endpoint(sock.getsockname()[:2]))

    async def close(self) -> None:
        """Stop accepting, let requests in progress finish (a second at most), then cut what is left."""
        for server in self._servers:
            server.close()
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._tls_sockets:
            sock.close()
        await self.http.shutdown(1.0)
        await self.gate.close()
        for server in self._servers:
            await server.wait_closed()


def _bind(ep: Endpoint, reuse_port: bool) -> socket.socket:
    host, port = ep
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=1024, reuse_port=reuse_port)
    except OSError as exc:
        raise BindError(f"cannot listen on {format_endpoint(ep)}/tcp for the block page: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


async def start_block_page(
    config: BlockPageConfig,
    state_dir: str,
    lookup: Lookup,
    stats: BlockPageStats,
    *,
    templates: str | None = None,
    limits: Limits = Limits(),
    reuse_port: bool = False,
) -> BlockPageServer:
    """Listen on every `config.listen` (HTTP) and `config.tls_listen` (HTTPS) address.

    `lookup` gets the Host or SNI name; `state_dir` holds the local CA, created here on first use and only
    when there is a TLS listener; `templates` is a directory whose blocked.html / about.html replace the
    shipped ones. Raises ConfigError, TemplateError, CertificateError or BindError; nothing is left
    listening when it does.
    """
    operator = Operator.from_config(config)
    pages = Pages.load(templates)
    issuer = None
    if config.tls_listen:
        issuer = LeafIssuer(load_or_create(state_dir, config.operator))
    handler = BlockPageHandler(lookup, operator, pages, stats)
    http = web.Server(
        handler,
        keepalive_timeout=limits.header_timeout,
        max_line_size=limits.max_line,
        max_field_size=limits.max_line,
        max_headers=limits.max_headers,
        lingering_time=0,
        access_log=None,
        logger=_ClientFaults(logging.getLogger("sinkdns.blockpage.http"), {}),
    )
    gate = ConnectionGate(limits.max_connections, limits.lifetime, limits.header_timeout)
    server = BlockPageServer(http, gate, issuer)
    try:
        for ep in config.listen:
            await server.listen(ep, reuse_port)
        if issuer is not None:
            tls = server_context(issuer, lookup)
            for ep in config.tls_listen:
                server.listen_tls(ep, tls, reuse_port)
    except BaseException:
        await server.close()
        raise
    return server
