"""The /metrics and /healthz endpoints, served by aiohttp on their own address.

/metrics renders the per-app registry (the Prometheus text format, or OpenMetrics when the scraper's
Accept header asks for it). /healthz tells a load balancer or systemd whether DNS is being served, and
names what is degraded without failing the check: a policy file kept at its last good version still
leaves a working resolver.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from sinkdns.config import Endpoint, format_endpoint
from sinkdns.listen import BindError

T = TypeVar("T")

STARTING = "starting"
SERVING = "serving"
STOPPING = "stopping"


@dataclass(frozen=True)
class Health:
    """The process's state (starting, serving, stopping) and the degraded parts, one phrase each."""

    state: str
    degraded: tuple[str, ...] = ()


class MetricsServer:
    """A running metrics endpoint: `address` is the bound "host:port" (useful when asked for port 0)."""

    def __init__(self, runner: web.AppRunner, address: str) -> None:
        self.runner = runner
        self.address = address

    async def close(self) -> None:
        await self.runner.cleanup()


def on_loop(
    fn: Callable[[], T | Awaitable[T]], loop: asyncio.AbstractEventLoop, timeout: float = 10.0
) -> Callable[[], T]:
    """`fn`, callable from the rendering thread but run on `loop`, where the counts change, so a snapshot
    never sees a dict grow under it. `fn` may return an awaitable (the supervisor asking its workers),
    which is awaited on the loop. Wrap the snapshot source with this."""

    async def run() -> T:
        result = fn()
        return await result if inspect.isawaitable(result) else result

    def call() -> T:
        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    return call


def _metrics_handler(registry: CollectorRegistry) -> Callable:
    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encoder, registry)
        return web.Response(body=body, headers={"Content-Type": content_type})
    return metrics


def _health_handler(health: Callable[[], Health]) -> Callable:
    async def healthz(request: web.Request) -> web.Response:
        status = health()
        if status.state != SERVING:
            return web.Response(status=503, text=f"{status.state}\n")
        if status.degraded:
            return web.Response(text="degraded: " + "; ".join(status.degraded) + "\n")
        return web.Response(text="ok\n")
    return healthz


async def start_metrics_server(
    listen: Endpoint, registry: CollectorRegistry, health: Callable[[], Health]
) -> MetricsServer:
    """Serve /metrics and /healthz on `listen` (port 0 picks a free port; read it from `.address`).

    The registry is rendered on a thread: with 10,000 rule series rendering takes tens of milliseconds,
    which DNS must not wait for. Its collectors are therefore called off the loop; give the snapshot
    collector a source wrapped in `on_loop`, or one that does its own waiting (the workers' pipes).
    """
    app = web.Application()
    app.router.add_get("/metrics", _metrics_handler(registry))
    app.router.add_get("/healthz", _health_handler(health))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, listen[0], listen[1])
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise BindError(f"cannot listen on {format_endpoint(listen)}/tcp for metrics: {exc.strerror}") from None
    host, port = runner.addresses[0][:2]
    return MetricsServer(runner, format_endpoint((host, port)))
