import datetime as dt

import pytest

from sinkdns.policy.customers import Customer, Defaults, read_customer
from sinkdns.policy.source import PolicyFileError, unpack


def read(tmp_path, text, name="acme.toml"):
    (tmp_path / name).write_text(text)
    return read_customer(str(tmp_path / name), name, name.rsplit(".", 1)[0])


def test_all_keys(tmp_path):
    customer, rules = read(tmp_path, '''
name = "Acme Hosting Ltd"
reason = "One sentence on why."
link = "https://example.com/post"
contact = "mailto:abuse@example"
since = 2022-09-03
until = 2023-01-01T00:00:00Z
domains = ["acme.example", "*.bücher.example"]
action = "nxdomain"
ede = 16
ttl = 30
mode = "dry-run"
''')
    assert customer == Customer(
        "acme", "Acme Hosting Ltd", "One sentence on why.", "https://example.com/post", "mailto:abuse@example",
        "2022-09-03", dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc).timestamp(), "nxdomain", 16, 30, "dry-run",
    )
    assert [(n, unpack(r)[0]) for n, r in zip(rules.suffix_names, rules.suffix_refs)] == [
        ("acme.example", 8), ("xn--bcher-kva.example", 8)]


def test_defaults_fill_what_is_missing():
    action = Customer("acme").action_for("default", Defaults("op reason", "https://op", "mailto:op", 99), "acme.rpz", "", 3)
    assert (action.kind, action.organisation, action.reason, action.link, action.contact, action.ttl, action.ede,
            action.dry_run, action.rank, action.file) == (
        "blockpage", "acme", "op reason", "https://op", "mailto:op", 99, 15, False, 3, "acme.rpz")


@pytest.mark.parametrize("text, message", [
    ('name = "x"\ncolour = "red"\n', "acme.toml:2: unknown key 'colour'"),
    ('action = "explode"\n', "acme.toml:1: action: expected one of"),
    ("ede = 3\n", "acme.toml:1: ede: expected one of 15, 16, 17"),
    ("ttl = -1\n", "acme.toml:1: ttl: expected an integer"),
    ('mode = "maybe"\n', "acme.toml:1: mode:"),
    ("until = 2023-01-01T00:00:00\n", "acme.toml:1: until: expected an RFC 3339 date-time with offset"),
    ("until = 2023-01-01\n", "until: expected an RFC 3339"),
    ('domains = "acme.example"\n', "acme.toml:1: domains: expected a list of strings"),
    ('name = \n', "acme.toml:1: not valid TOML"),
    ("name = 3\n", "name: expected a string"),
])
def test_errors_name_file_line_and_key(tmp_path, text, message):
    with pytest.raises(PolicyFileError, match=message.replace("(", r"\(")):
        read(tmp_path, text)


def test_bad_domain_is_a_warning_with_its_line(tmp_path):
    _, rules = read(tmp_path, 'domains = [\n  "ok.example",\n  "bad..example",\n]\n')
    assert rules.suffix_names == ["ok.example"]
    assert rules.warnings == ["acme.toml:3: domains: 'bad..example' has an empty label"]
