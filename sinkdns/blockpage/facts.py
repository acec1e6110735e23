"""What the block page says: the facts of one blocked name, and who runs the block.

The page never reads the policy index itself. It asks a `Lookup` for the name a visitor's browser sent
(Host header or TLS SNI), so the policy engine can change without the HTTP side knowing, and tests can
hand the server a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sinkdns.config import BlockPageConfig
from sinkdns.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BlockFacts:
    """Why names are blocked: what the page shows besides the name itself, which the server takes from the
    request. Nothing in it depends on the name, so a lookup can hand out one object per customer or rule.
    Every text field is shown as text, never as markup; empty `reason`, `link` and `contact` fall back to
    the operator's defaults from `[blockpage]`.
    """

    customer: str  # customer id (the policy file stem); also the metrics label
    customer_name: str = ""  # display name; the id when empty
    reason: str = ""
    link: str = ""  # the published post explaining the block
    contact: str = ""  # mailto:, http(s) URL, or plain text
    since: str = ""  # ISO date, e.g. 2022-09-03


Lookup = Callable[[str], BlockFacts | None]
"""Maps a host name (lower case, no port, no trailing dot) to its facts, or None when it is not blocked."""


@dataclass(frozen=True, slots=True)
class Operator:
    """Who implements the block: named on every page and in the RFC 7725 `Link: rel="blocked-by"` header."""

    name: str
    url: str
    contact: str
    reason: str
    policy_url: str

    @classmethod
    def from_config(cls, config: BlockPageConfig) -> Operator:
        """Check the URLs once at start-up, so a bad one is a config error rather than a broken header later."""
        problems = []
        for key in ("operator_url", "policy_url"):
            value = getattr(config, key)
            if value and not is_web_url(value):
                problems.append(f"blockpage.{key}: expected an absolute http(s) URL, got {value!r}")
        if problems:
            raise ConfigError(problems)
        return cls(config.operator, config.operator_url, config.contact, config.reason, config.policy_url)


def is_web_url(value: str) -> bool:
    """An absolute http(s) URL that is safe in an href and in a Link header (no spaces, quotes or angle brackets)."""
    if any(ch.isspace() or ch in '<>"\\' or not ch.isprintable() for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
