"""The block-page server on loopback: statuses, headers and pages, hostile requests, limits, HTTPS."""

import asyncio
import contextlib
import json
import logging
import socket
import ssl

import pytest
import uvloop

from sinkdns.blockpage import BlockFacts, BlockPageStats, Limits, start_block_page
from sinkdns.blockpage.ca import export_ca
from sinkdns.blockpage.server import wants_json
from sinkdns.config import BlockPageConfig
from sinkdns.errors import ConfigError
from sinkdns.listen import BindError

BLOCKED = {
    "kiwifarms.net": BlockFacts(
        customer="kiwifarms", customer_name="Kiwi Farms",
        reason="An imminent and emergency threat to human life.",
        link="https://blog.cloudflare.com/kiwifarms-blocked/", contact="mailto:abuse@example.net", since="2022-09-03",
    ),
}
CONFIG = BlockPageConfig(
    listen=(("127.0.0.1", 0),), tls_listen=(("127.0.0.1", 0),), operator="Example Networks",
    operator_url="https://example.net/", contact="mailto:noc@example.net", policy_url="https://example.net/policy",
)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def lookup(name):
    return BLOCKED.get(name)


class Reply:
    def __init__(self, raw: bytes):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0] else 0
        self.headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        self.text = self.body.decode("utf-8", "replace")

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        assert len(values) <= 1, values
        return values[0] if values else None


def run(coro, loop_factory=asyncio.new_event_loop):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


@contextlib.asynccontextmanager
async def serving(tmp_path, config=CONFIG, limits=None, **kwargs):
    stats = BlockPageStats()
    server = await start_block_page(config, str(tmp_path), lookup, stats, limits=limits or Limits(), **kwargs)
    server.stats = stats
    try:
        yield server
    finally:
        await server.close()


def _split(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


async def exchange(address, raw: bytes, tls=None, server_hostname=None, timeout=5.0) -> Reply:
    """Send raw bytes, read until the server closes; the connection must close (requests say Connection: close)."""
    host, port = _split(address)
    reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname=server_hostname)
    writer.write(raw)
    data = await asyncio.wait_for(reader.read(-1), timeout)
    writer.close()
    return Reply(data)


def get(host="kiwifarms.net", path="/", method="GET", headers=""):
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode()


def test_blocked_name_gets_451_with_the_facts(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            reply = await exchange(server.addresses[0], get(headers=f"Accept: {BROWSER_ACCEPT}\r\n"))
            return reply, server.stats.views

    reply, views = run(go())
    assert reply.status == 451
    assert reply.header("Link") == '<https://example.net/>; rel="blocked-by"'
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.header("Content-Security-Policy").startswith("default-src 'none'")
    assert reply.header("Location") is None
    for text in ("kiwifarms.net", "Kiwi Farms", "An imminent and emergency threat to human life.",
                 "3 September 2022", "abuse@example.net", 'href="https://blog.cloudflare.com/kiwifarms-blocked/"'):
        assert text in reply.text
    assert views == {("kiwifarms", "http"): 1}


PATHS = ["/", "/deep/path/?q=1&r=<x>", "//evil.example/", "/..%2f..%2fetc/passwd", "/\\evil.example", "/" + "a" * 4000]


@pytest.mark.parametrize("path", PATHS)
def test_any_path_gets_the_page_and_never_a_redirect(tmp_path, path):
    async def go():
        async with serving(tmp_path) as server:
            return await exchange(server.addresses[0], get(path=path))

    reply = run(go())
    assert reply.status == 451
    assert reply.header("Location") is None
    assert "Kiwi Farms" in reply.text


def test_head_gets_the_headers_without_a_body(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            return await exchange(server.addresses[0], get(method="HEAD")), await exchange(server.addresses[0], get())

    head, full = run(go())
    assert head.status == 451 and head.body == b""
    assert head.header("Content-Length") == full.header("Content-Length") == str(len(full.body))
    assert head.header("Link") == full.header("Link")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_other_methods_get_405_with_the_same_facts(tmp_path, method):
    async def go():
        async with serving(tmp_path) as server:
            return await exchange(server.addresses[0], get(method=method, headers="Content-Length: 0\r\n"))

    reply = run(go())
    assert reply.status == 405
    assert reply.header("Allow") == "GET, HEAD"
    assert reply.header("Link") == '<https://example.net/>; rel="blocked-by"'
    assert reply.header("Cache-Control") == "no-store"
    assert "Kiwi Farms" in reply.text and f"your {method} request was not carried out" in reply.text


def test_json_when_asked(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            address = server.addresses[0]
            return (await exchange(address, get(headers="Accept: application/json\r\n")),
                    await exchange(address, get(host="example.org", headers="Accept: application/json\r\n")))

    blocked, about = run(go())
    assert blocked.status == 451 and blocked.header("Content-Type") == "application/json; charset=utf-8"
    assert blocked.header("Cache-Control") == "no-store"
    assert blocked.header("Link") == '<https://example.net/>; rel="blocked-by"'
    facts = json.loads(blocked.body)
    assert facts["domain"] == "kiwifarms.net" and facts["customer"] == "kiwifarms"
    assert facts["link"] == "https://blog.cloudflare.com/kiwifarms-blocked/" and facts["since"] == "2022-09-03"
    assert about.status == 200 and json.loads(about.body)["blocked"] is False


@pytest.mark.parametrize(
    "accept, expected",
    [
        ("application/json", True),
        ("application/json, text/html;q=0.9", True),
        ("text/html, application/json;q=0.9", False),
        ("text/html;q=0.5, application/json", True),
        ("application/json;q=0", False),
        ("application/json;q=oops", False),
        (BROWSER_ACCEPT, False),
        ("*/*", False),
        ("", False),
    ],
)
def test_wants_json(accept, expected):
    assert wants_json(accept) is expected


def test_a_host_that_is_not_blocked_gets_the_plain_page(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            return await exchange(server.addresses[0], get(host="127.0.0.1:8080")), server.stats.views

    reply, views = run(go())
    assert reply.status == 200
    assert reply.header("Link") is None
    assert reply.header("Cache-Control") == "no-store"
    assert "127.0.0.1 is not a blocked site" in reply.text.replace("<code>", "").replace("</code>", "")
    for secret in ("Kiwi", "kiwifarms", "imminent", "cloudflare", "2022"):
        assert secret not in reply.text
    assert views == {("none", "http"): 1}


@pytest.mark.parametrize(
    "host, shown",
    [
        ("<script>alert(1)</script>.example", "&lt;script&gt;alert(1)&lt;/script&gt;.example"),
        ('"><img src=x onerror=alert(1)>', "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        ("x' onmouseover='alert(1)", "x&#x27; onmouseover=&#x27;alert(1)"),
    ],
)
def test_a_hostile_host_is_shown_as_text(tmp_path, host, shown):
    async def go():
        async with serving(tmp_path) as server:
            return await exchange(server.addresses[0], get(host=host))

    reply = run(go())
    assert reply.status == 200
    assert shown in reply.text
    assert "<script" not in reply.text and "<img" not in reply.text and "' onmouseover" not in reply.text


GET = b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\n"
BAD_REQUESTS = {
    "no Host in HTTP/1.1": b"GET / HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\nHost: example.org\r\n\r\n",
    "long Host": b"GET / HTTP/1.1\r\nHost: " + b"a" * 301 + b"\r\n\r\n",
    "a body": b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\nContent-Length: 5\r\n\r\nhello",
    "a chunked body": GET + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "length and chunked": GET + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two lengths": b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "odd transfer coding": b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\nX-A: 1\r\n  folded\r\n\r\n",
    "64 KB header": b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
    "100 headers": GET + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n",
    "long request line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: kiwifarms.net\r\n\r\n",
    "TLS ClientHello": bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00",
    "HTTP/0.9": b"GET /\r\n\r\n",
    "random bytes": bytes(range(256)) * 16,
    "control character in Host": b"GET / HTTP/1.1\r\nHost: kiwi\x1b[2Jfarms.net\r\n\r\n",
}


@pytest.mark.parametrize("raw", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_malformed_requests_get_400_and_the_connection_closes(tmp_path, raw, caplog):
    async def go():
        async with serving(tmp_path) as server:
            reply = await exchange(server.addresses[0], raw, timeout=2.0)
            return reply, server.stats.views

    caplog.set_level(logging.DEBUG)
    reply, views = run(go())
    assert reply.status in (0, 400)  # 0: closed without an answer
    assert "Kiwi" not in reply.text
    assert views == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_http_1_0_without_host_gets_the_plain_page(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            return await exchange(server.addresses[0], b"GET / HTTP/1.0\r\n\r\n")

    reply = run(go())
    assert reply.status == 200 and "did not name a site" in reply.text


def test_keep_alive_serves_several_requests(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            request = b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\n\r\n"
            return await exchange(server.addresses[0], request + request + get())

    reply = run(go())
    assert reply.status == 451
    assert reply.body.count(b"HTTP/1.1 451") == 2


async def _closed_within(reader, seconds):
    """Wait for the server to close; True when it did so in time."""
    try:
        await asyncio.wait_for(reader.read(-1), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def _settle(gate):
    """Give the server a moment to see the clients' closes."""
    for _ in range(100):
        if not gate.open:
            return
        await asyncio.sleep(0.01)


def test_a_slow_client_is_cut_off(tmp_path):
    async def go():
        async with serving(tmp_path, limits=Limits(header_timeout=0.3)) as server:
            reader, writer = await asyncio.open_connection(*_split(server.addresses[0]))
            writer.write(b"GET / HTTP/1.1\r\nHost: kiwi")  # and never the rest
            start = asyncio.get_running_loop().time()
            closed = await _closed_within(reader, 3.0)
            writer.close()
            return closed, asyncio.get_running_loop().time() - start

    closed, waited = run(go())
    assert closed and waited < 2.0


def test_a_trickling_client_is_cut_off_at_the_lifetime(tmp_path):
    async def go():
        async with serving(tmp_path, limits=Limits(header_timeout=30, lifetime=0.5)) as server:
            _, writer = await asyncio.open_connection(*_split(server.addresses[0]))
            request = b"GET / HTTP/1.1\r\nHost: kiwifarms.net\r\n\r\n"
            loop = asyncio.get_running_loop()
            start = loop.time()
            while loop.time() - start < 3 and not writer.is_closing():
                writer.write(request)  # keeps asking and never reads; a write after the server's reset fails
                await asyncio.sleep(0.05)
            return loop.time() - start

    assert run(go()) < 2.0


def test_connections_over_the_limit_are_refused(tmp_path):
    async def go():
        async with serving(tmp_path, limits=Limits(max_connections=2)) as server:
            host, port = _split(server.addresses[0])
            held = [await asyncio.open_connection(host, port) for _ in range(2)]
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection(host, port)
            refused = await _closed_within(reader, 1.0)
            writer.close()
            for _, w in held:
                w.close()
            await asyncio.sleep(0.1)
            after = await exchange(server.addresses[0], get())
            return refused, after.status, server.gate.refused

    refused, status, count = run(go())
    assert refused and status == 451 and count == 1


def test_https_for_a_blocked_name(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            client = ssl.create_default_context(cadata=export_ca(str(tmp_path)))
            reply = await exchange(server.tls_addresses[0], get(), tls=client, server_hostname="kiwifarms.net")
            return reply, server.stats.views

    reply, views = run(go())
    assert reply.status == 451 and "Kiwi Farms" in reply.text
    assert views == {("kiwifarms", "https"): 1}


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_https_refuses_names_that_are_not_blocked(tmp_path, loop_factory, caplog):
    async def attempt(address, client, name):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await exchange(address, get(host=name or "kiwifarms.net"), tls=client, server_hostname=name)

    async def go():
        async with serving(tmp_path) as server:
            address = server.tls_addresses[0]
            client = ssl.create_default_context(cadata=export_ca(str(tmp_path)))
            careless = ssl.create_default_context()
            careless.check_hostname = False
            careless.verify_mode = ssl.CERT_NONE
            await attempt(address, careless, "example.org")
            await attempt(address, careless, "")  # no SNI at all
            await attempt(address, client, "sub.kiwifarms.net")
            ok = await exchange(address, get(), tls=client, server_hostname="kiwifarms.net")
            await _settle(server.gate)
            return ok.status, server.issuer.issued, len(server.gate.open)

    caplog.set_level(logging.DEBUG)
    status, issued, still_open = run(go(), loop_factory)
    assert status == 451
    assert issued == 1  # nothing was signed for the names that are not blocked
    assert still_open == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_tls_handshakes_count_against_the_connection_limit(tmp_path):
    async def go():
        async with serving(tmp_path, limits=Limits(max_connections=1)) as server:
            host, port = _split(server.tls_addresses[0])
            idle = await asyncio.open_connection(host, port)  # never says hello
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection(host, port)
            refused = await _closed_within(reader, 1.0)
            writer.close()
            idle[1].close()
            return refused, len(server.gate.open)

    refused, _ = run(go())
    assert refused


def test_a_silent_tls_client_is_cut_off(tmp_path):
    async def go():
        async with serving(tmp_path, limits=Limits(header_timeout=0.3)) as server:
            reader, writer = await asyncio.open_connection(*_split(server.tls_addresses[0]))
            closed = await _closed_within(reader, 3.0)
            writer.close()
            await _settle(server.gate)
            return closed, len(server.gate.open)

    assert run(go()) == (True, 0)


def test_close_releases_the_ports(tmp_path):
    async def go():
        async with serving(tmp_path) as server:
            addresses = server.addresses + server.tls_addresses
        for address in addresses:
            with pytest.raises(ConnectionError):
                await asyncio.open_connection(*_split(address))

    run(go())


def test_an_address_in_use_is_a_bind_error_and_nothing_stays_open(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = BlockPageConfig(listen=(("127.0.0.1", 0), ("127.0.0.1", port)))
    try:
        with pytest.raises(BindError, match=f"127.0.0.1:{port}"):
            run(start_block_page(config, str(tmp_path), lookup, BlockPageStats()))
    finally:
        taken.close()


def test_no_tls_listener_makes_no_ca(tmp_path):
    async def go():
        async with serving(tmp_path, config=BlockPageConfig(listen=(("127.0.0.1", 0),))) as server:
            return server.tls_addresses

    assert run(go()) == []
    assert list(tmp_path.iterdir()) == []


def test_an_operator_url_that_cannot_be_a_link_header_is_a_config_error(tmp_path):
    config = BlockPageConfig(operator_url="https://example.net/>; rel=evil")
    with pytest.raises(ConfigError, match="blockpage.operator_url"):
        run(start_block_page(config, str(tmp_path), lookup, BlockPageStats()))


def test_operator_templates_are_served(tmp_path):
    (tmp_path / "blocked.html").write_text("<p>{{domain}}: {{reason}}</p>", encoding="utf-8")

    async def go():
        async with serving(tmp_path, templates=str(tmp_path)) as server:
            return await exchange(server.addresses[0], get())

    assert run(go()).text == "<p>kiwifarms.net: An imminent and emergency threat to human life.</p>"
