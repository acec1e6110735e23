"""Turn facts into the page's values, the HTML document and the JSON body.

All decisions about what may become a link live here: a value reaches an href only when it is an
http(s) URL (or a mailto: address for the contact); anything else is shown as text or left out.
The templates then only arrange escaped values.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from importlib import resources

from sinkdns.blockpage.facts import BlockFacts, Operator, is_web_url
from sinkdns.blockpage.template import Template, TemplateError

BLOCKED_NAMES = frozenset({
    "domain", "domain_ascii", "customer", "customer_name", "reason", "link", "contact", "contact_url",
    "since", "since_iso", "operator", "operator_url", "refused_method",
})
ABOUT_NAMES = frozenset({
    "host", "operator", "operator_url", "contact", "contact_url", "policy_url", "refused_method",
})


@dataclass(frozen=True, slots=True)
class Pages:
    """The two documents the server renders: a blocked name, and anything else (the host explaining itself)."""

    blocked: Template
    about: Template

    @classmethod
    def load(cls, directory: str | None = None) -> Pages:
        """The shipped templates, each replaced by the file of the same name in `directory` if it has one."""
        return cls(_load("blocked.html", BLOCKED_NAMES, directory), _load("about.html", ABOUT_NAMES, directory))


def _load(name: str, names: frozenset[str], directory: str | None) -> Template:
    path = os.path.join(directory, name) if directory else None
    if path is not None and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                return Template(f.read(), path, names)
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: cannot read: {exc}") from None
    shipped = resources.files("sinkdns.blockpage").joinpath("templates", name)
    return Template(shipped.read_text(encoding="utf-8"), f"sinkdns/blockpage/templates/{name}", names)


def blocked_values(domain: str, facts: BlockFacts, operator: Operator, refused_method: str = "") -> dict[str, str]:
    """The page for `domain` (as asked: lower case, no trailing dot); the customer's own reason, link and contact
    win over the operator's defaults."""
    shown = display_name(domain)
    contact, contact_url = _contact(facts.contact or operator.contact)
    link = facts.link or operator.policy_url
    since, since_iso = _date(facts.since)
    return {
        "domain": shown,
        "domain_ascii": domain if shown != domain else "",
        "customer": facts.customer,
        "customer_name": facts.customer_name or facts.customer,
        "reason": facts.reason or operator.reason,
        "link": link if is_web_url(link) else "",
        "contact": contact,
        "contact_url": contact_url,
        "since": since,
        "since_iso": since_iso,
        "operator": operator.name,
        "operator_url": operator.url,
        "refused_method": refused_method,
    }


def about_values(host: str, operator: Operator, refused_method: str = "") -> dict[str, str]:
    """The plain page for a host that is not blocked: what this server is, and nothing about any customer."""
    contact, contact_url = _contact(operator.contact)
    return {
        "host": host,
        "operator": operator.name,
        "operator_url": operator.url,
        "contact": contact,
        "contact_url": contact_url,
        "policy_url": operator.policy_url,
        "refused_method": refused_method,
    }


def blocked_json(domain: str, facts: BlockFacts, operator: Operator) -> dict:
    """The same facts as the page, for `Accept: application/json`."""
    values = blocked_values(domain, facts, operator)
    return {
        "blocked": True,
        "domain": domain,
        "customer": facts.customer,
        "customer_name": values["customer_name"],
        "reason": values["reason"],
        "link": values["link"],
        "contact": facts.contact or operator.contact,
        "since": facts.since,
        "operator": {"name": operator.name, "url": operator.url},
    }


def about_json(host: str, operator: Operator) -> dict:
    return {"blocked": False, "host": host, "operator": {"name": operator.name, "url": operator.url}}


def display_name(name: str) -> str:
    """The Unicode form of an IDN, which is what the visitor typed; the A-label form when it does not decode."""
    if "xn--" not in name:
        return name
    try:
        return name.encode("ascii").decode("idna")
    except UnicodeError:
        return name


def _contact(value: str) -> tuple[str, str]:
    """(text shown, href or ""): a mailto: or http(s) contact becomes a link, anything else stays text."""
    if value.startswith("mailto:"):
        address = value[len("mailto:"):]
        safe = address and not any(ch.isspace() or ch in '<>"\\' or not ch.isprintable() for ch in address)
        return address, value if safe else ""
    return value, value if is_web_url(value) else ""


def _date(value: str) -> tuple[str, str]:
    """(text shown, ISO date for <time datetime>): '3 September 2022'; text that is not a date is shown as is."""
    try:
        day = datetime.date.fromisoformat(value[:10])
    except ValueError:
        return value, ""
    return f"{day.day} {day.strftime('%B')} {day.year}", day.isoformat()
