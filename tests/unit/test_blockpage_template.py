"""The template language: values are always escaped, sections follow emptiness, mistakes fail at load time."""

import pytest

from sinkdns.blockpage.template import Template, TemplateError

NAMES = frozenset({"a", "b"})


@pytest.mark.parametrize(
    "text, values, expected",
    [
        ("plain", {}, "plain"),
        ("<p>{{a}}</p>", {"a": "x"}, "<p>x</p>"),
        ("{{ a }}", {"a": "x"}, "x"),
        ("{{a}}", {"a": "<b>&\"'"}, "&lt;b&gt;&amp;&quot;&#x27;"),
        ('<a href="{{a}}">', {"a": '" onclick="x'}, '<a href="&quot; onclick=&quot;x">'),
        ("{{#a}}[{{a}}]{{/a}}", {"a": "x"}, "[x]"),
        ("{{#a}}[{{a}}]{{/a}}", {"a": ""}, ""),
        ("{{^a}}none{{/a}}", {"a": ""}, "none"),
        ("{{^a}}none{{/a}}", {"a": "x"}, ""),
        ("{{#a}}{{#b}}{{a}}{{b}}{{/b}}{{/a}}", {"a": "1", "b": "2"}, "12"),
        ("{{#a}}{{#b}}{{a}}{{b}}{{/b}}{{/a}}", {"a": "1", "b": ""}, ""),
        ("{{a}}{{a}}", {"a": "{{b}}"}, "{{b}}{{b}}"),  # values are never parsed as template text
    ],
)
def test_render(text, values, expected):
    full = {"a": "", "b": ""} | values
    assert Template(text, "t.html", NAMES).render(full) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("line1\n{{c}}", "t.html:2: unknown name 'c'"),
        ("{{{a}}}", "is not a tag"),
        ("{{a | raw}}", "is not a tag"),
        ("{{&a}}", "is not a tag"),
        ("{{#a}}open", "t.html:1: section 'a' is never closed"),
        ("{{/a}}", "closes a section that is not open"),
        ("{{#a}}{{#b}}{{/a}}{{/b}}", "closes a section that is not open"),
    ],
)
def test_mistakes_fail_at_load(text, message):
    with pytest.raises(TemplateError, match=message.replace("|", r"\|").replace("{", r"\{")):
        Template(text, "t.html", NAMES)
