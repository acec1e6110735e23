import io
import json
import os

import pytest

from sinkdns.config import BlockPageConfig, PolicyConfig
from sinkdns.policy.report import check_command, explain_command

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "zones")


def run_check(zones, strict=False, as_json=False):
    out = io.StringIO()
    status = check_command(str(zones), strict, as_json, out)
    return status, out.getvalue()


def test_shipped_zones_pass_strict_check():
    status, text = run_check(SHIPPED, strict=True)
    assert status == 0, text
    assert "kiwifarms" in text and "0 errors, 0 warnings: OK" in text


@pytest.mark.parametrize("files, strict, status", [
    ({"a.txt": "a.example\n"}, True, 0),
    ({"a.txt": "a.example\nbad..example\n"}, False, 0),
    ({"a.txt": "a.example\nbad..example\n"}, True, 1),
    ({"a.txt": "a.example\n", "b.toml": "colour = 1\n"}, False, 1),
], ids=["clean", "warning", "warning-strict", "error"])
def test_check_exit_codes(tmp_path, files, strict, status):
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    assert run_check(tmp_path, strict)[0] == status


def test_check_text_and_json_name_file_and_line(tmp_path):
    (tmp_path / "a.txt").write_text("a.example\nbad..example\n")
    (tmp_path / "b.toml").write_text("colour = 1\n")
    status, text = run_check(tmp_path)
    assert "warning: a.txt:2: 'bad..example' has an empty label" in text
    assert "ERROR b.toml:1: unknown key 'colour'" in text
    status, doc = run_check(tmp_path, as_json=True)
    doc = json.loads(doc)
    assert status == 1 and doc["ok"] is False and doc["customers"] == {"a": 1}
    assert doc["files"][0] == {"file": "a.txt", "format": "domains", "customer": "a", "rules": 1, "skipped": 1,
                               "unsupported": 0, "warnings": ["a.txt:2: 'bad..example' has an empty label"], "error": None}
    assert doc["errors"] == ["b.toml:1: unknown key 'colour' (expected one of name, reason, link, contact, since, "
                             "until, action, ede, ttl, mode, domains)"]


def explain(name, qtype=""):
    out = io.StringIO()
    status = explain_command(name, qtype, SHIPPED, PolicyConfig(), BlockPageConfig(), out)
    return status, out.getvalue()


def test_explain_a_blocked_name():
    status, text = explain("WWW.KiwiFarms.net.")
    assert status == 0
    assert "decision: blockpage" in text and "rule: kiwifarms.net (kiwifarms.toml:" in text
    assert "customer: kiwifarms (Kiwi Farms)" in text and "https://blog.cloudflare.com/kiwifarms-blocked/" in text
    assert "a      noerror: www.kiwifarms.net. 60 in a 127.0.0.1" in text.lower()
    assert "https  noerror: kiwifarms.net. 60 in soa" in text.lower()


@pytest.mark.parametrize("name, qtype, expected", [
    ("example.org", "", "the query would be forwarded"),
    ("nxdomain.example", "MX", "MX     NXDOMAIN"),
    ("drop.example", "A", "nothing (dropped)"),
    ("tcp-only.example", "A", "NOERROR TC"),
    ("use-application-dns.net", "A", "canary"),
    ("bücher.example", "A", "rule: xn--bcher-kva.example"),
])
def test_explain(name, qtype, expected):
    status, text = explain(name, qtype)
    assert status == 0 and expected in text, text


def test_explain_bad_type():
    assert explain("example.org", "NOTATYPE")[0] == 2
