"""What the page says, and that nothing a visitor or a policy file supplies can become markup."""

import dataclasses
import html.parser
import itertools
import json

import pytest

from sinkdns.blockpage.facts import BlockFacts, Operator
from sinkdns.blockpage.render import Pages, about_json, about_values, blocked_json, blocked_values, display_name
from sinkdns.blockpage.template import TemplateError

OPERATOR = Operator(
    name="Example Networks", url="https://example.net/", contact="mailto:noc@example.net",
    reason="Blocked under our acceptable use policy.", policy_url="https://example.net/policy",
)
FACTS = BlockFacts(
    customer="kiwifarms", customer_name="Kiwi Farms",
    reason="An imminent and emergency threat to human life.",
    link="https://blog.cloudflare.com/kiwifarms-blocked/", contact="mailto:abuse@example.net", since="2022-09-03",
)

# Classic payloads for every context the page has (text, double-quoted attribute, URL), each also
# wrapped in attempts to close the surrounding element or attribute first.
_CORES = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>", "<svg/onload=alert(1)>",
    "<iframe src=javascript:alert(1)>", "<body onload=alert(1)>", "<a href=javascript:alert(1)>x</a>",
    "<style>*{display:none}</style>", "<meta http-equiv=refresh content=0;url=//evil.example>",
    "<base href=//evil.example/>", "<link rel=stylesheet href=//evil.example/x.css>", "<form action=//evil.example>",
    "<details open ontoggle=alert(1)>", "<math><mi xlink:href=javascript:alert(1)>x", "<!--", "<![CDATA[",
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "&lt;script&gt;", "&#60;script&#62;",
    "\" onmouseover=\"alert(1)", "' onmouseover='alert(1)", "{{operator}}", "\u202e<script>", "\x00<script>",
]
_WRAPS = ["{}", "\">{}", "'>{}", "</title>{}", "</style>{}"]
PAYLOADS = [wrap.format(core) for core, wrap in itertools.product(_CORES, _WRAPS)]


class _Structure(html.parser.HTMLParser):
    """The element and attribute names of a document, and which attributes hold URLs: what an injection changes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.urls: list[str] = []
        self.comments = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(name for name, _ in attrs)))
        self.urls += [value for name, value in attrs if name in ("href", "src", "action", "datetime")]

    def handle_comment(self, data):
        self.comments += 1


def _structure(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser


def test_there_are_enough_payloads():
    assert len(PAYLOADS) >= 100


@pytest.mark.parametrize("payload", PAYLOADS)
def test_blocked_page_keeps_its_structure_whatever_the_values(payload):
    pages = Pages.load()
    # Plain text in every field opens the same sections a payload does (no link: neither is a URL or a date).
    plain = BlockFacts(*["x"] * 6)
    plain_operator = dataclasses.replace(OPERATOR, name="x")
    baseline = _structure(pages.blocked.render(blocked_values("x", plain, plain_operator, "x")))
    hostile = BlockFacts(*[payload] * 6)
    page = pages.blocked.render(blocked_values(payload, hostile, dataclasses.replace(OPERATOR, name=payload), payload))
    found = _structure(page)
    assert found.tags == baseline.tags
    assert found.urls == baseline.urls == ["https://example.net/"]
    assert found.comments == 0
    assert "<script" not in page.lower()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_about_page_keeps_its_structure_whatever_the_host(payload):
    pages = Pages.load()
    baseline = _structure(pages.about.render(about_values("example.org", OPERATOR, "POST")))
    page = pages.about.render(about_values(payload, OPERATOR, payload))
    found = _structure(page)
    assert found.tags == baseline.tags
    assert found.urls == baseline.urls
    assert "<script" not in page.lower()


def test_blocked_page_names_every_fact():
    page = Pages.load().blocked.render(blocked_values("kiwifarms.net", FACTS, OPERATOR))
    for text in ("kiwifarms.net", "Kiwi Farms", "An imminent and emergency threat to human life.",
                 "3 September 2022", 'datetime="2022-09-03"', "abuse@example.net", "Example Networks",
                 'href="https://blog.cloudflare.com/kiwifarms-blocked/"', 'href="mailto:abuse@example.net"'):
        assert text in page
    assert "answers only GET and HEAD" not in page


def test_refused_method_is_explained():
    page = Pages.load().blocked.render(blocked_values("kiwifarms.net", FACTS, OPERATOR, "DELETE"))
    assert "your DELETE request was not carried out" in page


@pytest.mark.parametrize(
    "change, key, expected",
    [
        ({"reason": ""}, "reason", OPERATOR.reason),
        ({"link": ""}, "link", OPERATOR.policy_url),
        ({"contact": ""}, "contact", "noc@example.net"),
        ({"customer_name": ""}, "customer_name", "kiwifarms"),
        ({"link": "javascript:alert(1)"}, "link", ""),
        ({"link": "ftp://example.net/x"}, "link", ""),
        ({"link": "https://example.net/a b"}, "link", ""),
        ({"contact": "https://example.net/appeal"}, "contact_url", "https://example.net/appeal"),
        ({"contact": "Call +1 555 0100"}, "contact_url", ""),
        ({"contact": "mailto:a b@example.net"}, "contact_url", ""),
        ({"since": ""}, "since", ""),
        ({"since": "2022-09-03T12:00:00Z"}, "since_iso", "2022-09-03"),
        ({"since": "autumn 2022"}, "since", "autumn 2022"),
        ({"since": "autumn 2022"}, "since_iso", ""),
    ],
)
def test_blocked_values(change, key, expected):
    assert blocked_values("kiwifarms.net", dataclasses.replace(FACTS, **change), OPERATOR)[key] == expected


@pytest.mark.parametrize(
    "domain, key, expected",
    [
        ("xn--bcher-kva.example", "domain", "bücher.example"),
        ("xn--bcher-kva.example", "domain_ascii", "xn--bcher-kva.example"),
        ("www.kiwifarms.net", "domain", "www.kiwifarms.net"),
        ("www.kiwifarms.net", "domain_ascii", ""),
    ],
)
def test_the_page_names_the_domain_asked_for(domain, key, expected):
    assert blocked_values(domain, FACTS, OPERATOR)[key] == expected


def test_operator_without_links():
    bare = Operator(name="sinkdns", url="", contact="", reason="Blocked.", policy_url="")
    facts = dataclasses.replace(FACTS, link="", contact="")
    page = Pages.load().blocked.render(blocked_values("kiwifarms.net", facts, bare))
    assert "href" not in page
    assert "Contact" not in page


@pytest.mark.parametrize(
    "name, shown",
    [("example.com", "example.com"), ("xn--bcher-kva.example", "bücher.example"), ("xn--zz.example", "xn--zz.example"),
     ("<b>xn--</b>", "<b>xn--</b>")],
)
def test_display_name(name, shown):
    assert display_name(name) == shown


def test_json_carries_the_same_facts():
    body = json.loads(json.dumps(blocked_json("kiwifarms.net", FACTS, OPERATOR)))
    assert body == {
        "blocked": True, "domain": "kiwifarms.net", "customer": "kiwifarms", "customer_name": "Kiwi Farms",
        "reason": FACTS.reason, "link": FACTS.link, "contact": "mailto:abuse@example.net", "since": "2022-09-03",
        "operator": {"name": "Example Networks", "url": "https://example.net/"},
    }
    assert about_json("example.org", OPERATOR) == {
        "blocked": False, "host": "example.org", "operator": {"name": "Example Networks", "url": "https://example.net/"},
    }


def test_about_page_has_no_customer_data():
    page = Pages.load().about.render(about_values("example.org", OPERATOR))
    assert "example.org" in page and "is not a blocked site" in page
    assert 'href="https://example.net/policy"' in page
    assert "451" not in page


def test_operator_templates_replace_the_shipped_ones(tmp_path):
    (tmp_path / "blocked.html").write_text("<p>{{domain}} is blocked: {{reason}}</p>", encoding="utf-8")
    pages = Pages.load(str(tmp_path))
    page = pages.blocked.render(blocked_values("kiwifarms.net", FACTS, OPERATOR))
    assert page == f"<p>kiwifarms.net is blocked: {FACTS.reason}</p>"
    assert "block-page server" in pages.about.render(about_values("x", OPERATOR))


def test_operator_template_with_an_unknown_name_fails_at_load(tmp_path):
    (tmp_path / "about.html").write_text("<p>{{customer}}</p>", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"about.html:1: unknown name 'customer'"):
        Pages.load(str(tmp_path))


def test_shipped_templates_are_self_contained():
    pages = Pages.load()
    for page in (pages.blocked.render(blocked_values("kiwifarms.net", FACTS, OPERATOR)),
                 pages.about.render(about_values("example.org", OPERATOR))):
        found = _structure(page)
        tags = {tag for tag, _ in found.tags}
        assert not tags & {"script", "img", "link", "iframe", "object", "embed", "font"}
        assert "url(" not in page and "@import" not in page
        assert '<html lang="en">' in page and 'name="viewport"' in page

