"""A real browser (Debian's headless Chromium) opens a blocked name and shows the block page.

The block-page server runs in this process on loopback port 0; Chromium's --host-resolver-rules stands in
for the DNS answer that sends a blocked name to the block-page host. The screenshot is kept in
tests/artifacts/ for people to look at.
"""

import asyncio
import base64
import hashlib
import html.parser
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sinkdns.blockpage import BlockFacts, BlockPageStats, start_block_page
from sinkdns.config import BlockPageConfig

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FACTS = BlockFacts(
    customer="kiwifarms", customer_name="Kiwi Farms",
    reason="Cloudflare blocked Kiwi Farms because of an imminent and emergency threat to human life.",
    link="https://blog.cloudflare.com/kiwifarms-blocked/", contact="mailto:abuse@example.net", since="2022-09-03",
)
CONFIG = BlockPageConfig(
    listen=(("127.0.0.1", 0),), tls_listen=(("127.0.0.1", 0),), operator="Example Networks",
    operator_url="https://example.net/", contact="mailto:noc@example.net",
)


def lookup(name):
    return FACTS if name == "kiwifarms.net" or name.endswith(".kiwifarms.net") else None


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        why = "chromium is not installed (Debian: apt-get install --no-install-recommends chromium)"
        if os.environ.get("SINKDNS_REQUIRE_ALL") == "1":
            pytest.fail(f"{why}, and SINKDNS_REQUIRE_ALL=1 requires every test to run")
        pytest.skip(why)
    return path


@pytest.fixture
def browser() -> str:
    return chromium()


async def browse(browser: str, url: str, rules: str, screenshot: Path, *extra: str) -> str:
    """Load `url` in a fresh headless Chromium profile; return the rendered DOM and leave a screenshot."""
    with tempfile.TemporaryDirectory(prefix="sinkdns-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--host-resolver-rules={rules}", "--window-size=1000,1000",
            "--hide-scrollbars", *extra, "--dump-dom", f"--screenshot={screenshot}", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            dom, errors = await asyncio.wait_for(process.communicate(), 90)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, errors.decode(errors="replace")[-3000:]
    return dom.decode()


class Page(html.parser.HTMLParser):
    """The rendered DOM's visible text, title and links."""

    def __init__(self, dom: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: dict[str, str] = {}
        self.title = ""
        self._href: str | None = None
        self._in: list[str] = []
        self.feed(dom)
        self.close()

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if tag == "a":
            self._href = None

    def handle_data(self, data):
        if "style" in self._in:
            return
        if "title" in self._in:
            self.title += data
        elif data.strip():
            self.text.append(data.strip())
            if self._href is not None:
                self.links[data.strip()] = self._href

    @property
    def body(self) -> str:
        return " ".join(" ".join(self.text).split())


def test_chromium_shows_the_block_page_for_a_blocked_name(tmp_path, browser):
    async def go():
        stats = BlockPageStats()
        server = await start_block_page(CONFIG, str(tmp_path / "state"), lookup, stats)
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            rules = f"MAP kiwifarms.net {server.addresses[0]}"
            blocked = await browse(browser, "http://kiwifarms.net/some/page", rules, ARTIFACTS / "blockpage.png")
            about = await browse(browser, f"http://{server.addresses[0]}/", rules, tmp_path / "about.png")
        finally:
            await server.close()
        return blocked, about, stats.views

    blocked_dom, about_dom, views = asyncio.run(go())
    page = Page(blocked_dom)
    assert page.title == "Blocked: kiwifarms.net"
    for text in ("This site is blocked", "kiwifarms.net", "Kiwi Farms", FACTS.reason, "3 September 2022",
                 "Example Networks", "abuse@example.net"):
        assert text in page.body
    assert page.links["Read why Kiwi Farms is blocked"] == "https://blog.cloudflare.com/kiwifarms-blocked/"
    assert page.links["abuse@example.net"] == "mailto:abuse@example.net"
    assert (ARTIFACTS / "blockpage.png").stat().st_size > 10_000
    assert views[("kiwifarms", "http")] >= 1

    about = Page(about_dom)
    assert "is not a blocked site" in about.body
    assert "Kiwi" not in about.body


def test_chromium_gets_a_certificate_for_the_blocked_name_over_https(tmp_path, browser):
    async def go():
        stats = BlockPageStats()
        server = await start_block_page(CONFIG, str(tmp_path / "state"), lookup, stats)
        try:
            # This Chromium has no trust store to add the CA to; trusting the one leaf key instead still
            # proves that a real browser's handshake, SNI and name check succeed.
            spki = server.issuer.authority.leaf_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
            dom = await browse(
                browser, "https://www.kiwifarms.net/", f"MAP *.kiwifarms.net {server.tls_addresses[0]}",
                tmp_path / "tls.png", f"--ignore-certificate-errors-spki-list={pin}",
            )
        finally:
            await server.close()
        return dom, stats.views, server.issuer.issued

    dom, views, issued = asyncio.run(go())
    page = Page(dom)
    assert "www.kiwifarms.net" in page.body and "Kiwi Farms" in page.body
    assert set(views) == {("kiwifarms", "https")}
    assert issued == 1
