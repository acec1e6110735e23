"""A very small template language in which every value is HTML-escaped and nothing can opt out.

`{{name}}` inserts a value, escaped for both text and quoted attributes. `{{#name}}...{{/name}}` keeps its
body only when the value is not empty, `{{^name}}...{{/name}}` only when it is. There is deliberately no
raw output, no expressions and no includes: the values come from Host headers and policy files, and an
operator's replacement template cannot turn one of them into markup by mistake. Placeholders are checked
against the names the page provides when the template is loaded, so a typo fails at start-up, not as a
blank spot on the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TAG = re.compile(r"{{(.*?)}}", re.DOTALL)
_INSIDE = re.compile(r"\s*([#^/]?)\s*([a-z_][a-z0-9_]*)\s*")


class TemplateError(ValueError):
    """A template that cannot be used; the message names the template and the line."""


@dataclass(frozen=True, slots=True)
class _Value:
    name: str


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    inverted: bool
    body: tuple[_Node, ...]


_Node = str | _Value | _Section


class Template:
    """A parsed template; `render` only walks the tree, so a request never re-parses anything."""

    def __init__(self, text: str, source: str, names: frozenset[str]) -> None:
        self.source = source
        self._nodes = _parse(text, source, names)

    def render(self, values: Mapping[str, str]) -> str:
        out: list[str] = []
        _render(self._nodes, values, out)
        return "".join(out)


def _parse(text: str, source: str, names: frozenset[str]) -> tuple[_Node, ...]:
    stack: list[tuple[str, bool, list[_Node], int]] = [("", False, [], 0)]  # open sections: name, inverted, body, line
    pos = 0
    for match in _TAG.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        stack[-1][2].append(text[pos:match.start()])
        pos = match.end()
        tag = _INSIDE.fullmatch(match.group(1))
        if tag is None:
            raise TemplateError(f"{source}:{line}: {match.group(0)!r} is not a tag this template language has")
        kind, name = tag.groups()
        if name not in names:
            raise TemplateError(f"{source}:{line}: unknown name {name!r} (known: {', '.join(sorted(names))})")
        if kind in ("#", "^"):
            stack.append((name, kind == "^", [], line))
        elif kind == "/":
            opened, inverted, body, _ = stack.pop() if len(stack) > 1 else ("", False, [], 0)
            if opened != name:
                raise TemplateError(f"{source}:{line}: {{{{/{name}}}}} closes a section that is not open")
            stack[-1][2].append(_Section(name, inverted, _kept(body)))
        else:
            stack[-1][2].append(_Value(name))
    if len(stack) > 1:
        name, _, _, line = stack[-1]
        raise TemplateError(f"{source}:{line}: section {name!r} is never closed")
    stack[0][2].append(text[pos:])
    return _kept(stack[0][2])


def _kept(nodes: list[_Node]) -> tuple[_Node, ...]:
    return tuple(node for node in nodes if node != "")


def _render(nodes: tuple[_Node, ...], values: Mapping[str, str], out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Value):
            out.append(html.escape(values[node.name], quote=True))
        elif bool(values[node.name]) != node.inverted:
            _render(node.body, values, out)
