"""/metrics in both formats and /healthz through the state of the process, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
import pytest

from sinkdns.listen import BindError
from sinkdns.metrics.collector import EMPTY, make_registry
from sinkdns.metrics.http import SERVING, STARTING, STOPPING, Health, on_loop, start_metrics_server


class State:
    def __init__(self) -> None:
        self.health = Health(STARTING)

    def __call__(self) -> Health:
        return self.health


async def get(address: str, path: str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address}{path}", headers=headers) as response:
            return response.status, response.headers["Content-Type"], await response.text()


def test_metrics_in_text_format_and_openmetrics_when_asked():
    async def scenario():
        server = await start_metrics_server(("127.0.0.1", 0), make_registry(lambda: EMPTY), State())
        try:
            plain = await get(server.address, "/metrics")
            open_metrics = await get(server.address, "/metrics", Accept="application/openmetrics-text; version=1.0.0")
        finally:
            await server.close()
        return plain, open_metrics

    (status, kind, body), (om_status, om_kind, om_body) = asyncio.run(scenario())
    assert status == 200 and kind.startswith("text/plain") and "sinkdns_cache_hits_total 0.0" in body
    assert om_status == 200 and om_kind.startswith("application/openmetrics-text") and om_body.endswith("# EOF\n")


def test_healthz_follows_the_process_state_and_names_degraded_parts():
    state = State()

    async def scenario():
        server = await start_metrics_server(("127.0.0.1", 0), make_registry(lambda: EMPTY), state)
        seen = []
        try:
            for health in (
                Health(STARTING),
                Health(SERVING),
                Health(SERVING, ("acme.rpz kept at its last good version", "upstream 192.0.2.1:53 backed off")),
                Health(STOPPING, ("ignored while stopping",)),
            ):
                state.health = health
                status, _, body = await get(server.address, "/healthz")
                seen.append((status, body))
        finally:
            await server.close()
        return seen

    assert asyncio.run(scenario()) == [
        (503, "starting\n"),
        (200, "ok\n"),
        (200, "degraded: acme.rpz kept at its last good version; upstream 192.0.2.1:53 backed off\n"),
        (503, "stopping\n"),
    ]


def test_address_is_the_bound_port_and_close_releases_it():
    async def scenario():
        server = await start_metrics_server(("127.0.0.1", 0), make_registry(lambda: EMPTY), State())
        host, port = server.address.rsplit(":", 1)
        await server.close()
        return host, int(port)

    host, port = asyncio.run(scenario())
    assert host == "127.0.0.1" and port > 0
    with socket.socket() as sock:
        sock.bind((host, port))


def test_address_in_use_raises_and_leaks_nothing():
    async def scenario():
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(BindError, match="for metrics"):
                await start_metrics_server(taken.getsockname(), make_registry(lambda: EMPTY), State())

    asyncio.run(scenario())


def test_ipv6_address_is_bracketed():
    async def scenario():
        server = await start_metrics_server(("::1", 0), make_registry(lambda: EMPTY), State())
        try:
            return server.address, (await get(server.address, "/healthz"))[0]
        finally:
            await server.close()

    try:
        address, status = asyncio.run(scenario())
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert address.startswith("[::1]:") and status == 503


def test_rendering_is_off_the_loop_and_on_loop_takes_the_snapshot_on_it():
    threads: dict[str, int] = {}

    async def scenario():
        loop = asyncio.get_running_loop()
        threads["loop"] = threading.get_ident()

        def source():
            threads["source"] = threading.get_ident()
            return EMPTY

        def render_thread():
            threads["render"] = threading.get_ident()
            return on_loop(source, loop)()

        server = await start_metrics_server(("127.0.0.1", 0), make_registry(render_thread), State())
        try:
            return await get(server.address, "/metrics")
        finally:
            await server.close()

    status, _, body = asyncio.run(scenario())
    assert status == 200 and "sinkdns_build_info" in body
    assert threads["source"] == threads["loop"] != threads["render"]


def test_on_loop_passes_the_error_back():
    async def scenario():
        def broken():
            raise KeyError("no such count")

        with pytest.raises(KeyError, match="no such count"):
            await asyncio.to_thread(on_loop(broken, asyncio.get_running_loop()))

    asyncio.run(scenario())


def test_on_loop_awaits_a_source_that_gathers_asynchronously():
    async def scenario():
        async def gather():
            await asyncio.sleep(0)
            return {"from": threading.get_ident()}

        return threading.get_ident(), await asyncio.to_thread(on_loop(gather, asyncio.get_running_loop()))

    loop_thread, result = asyncio.run(scenario())
    assert result == {"from": loop_thread}
