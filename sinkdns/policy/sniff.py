"""Tell a list's format from its first content lines, for files whose extension does not say."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from sinkdns.policy.names import is_ip

SNIFF_LINES = 100
_NAME_LIKE = re.compile(r"[\w*-]+(?:\.[\w-]+)+\.?")


def line_format(line: str) -> str | None:
    """The format one content line belongs to, or None when it could be in none of them."""
    if line.startswith(("||", "@@||", "@@|")):
        return "adblock"
    if line.startswith(("address=/", "server=/", "local=/")):
        return "dnsmasq"
    parts = line.split("#", 1)[0].split()
    if len(parts) >= 2 and is_ip(parts[0]):
        return "hosts"
    if len(parts) == 1 and _NAME_LIKE.fullmatch(parts[0]):
        return "domains"
    return None


def sniff(lines: Iterable[str]) -> str | None:
    """The format most of the first SNIFF_LINES content lines have; None when no line fits any format.

    Comments (`#`, `!`) and blank lines are not content. A file with no content is an empty domain list.
    """
    votes: Counter[str] = Counter()
    seen = 0
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#![":
            continue
        seen += 1
        kind = line_format(line)
        if kind is not None:
            votes[kind] += 1
        if seen >= SNIFF_LINES:
            break
    if not seen:
        return "domains"
    if not votes:
        return None
    return votes.most_common(1)[0][0]
