"""`sinkdns check` and `sinkdns explain`: the policy explained to the people who write it."""

from __future__ import annotations

import json
import time
from typing import TextIO

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import idna

from sinkdns.config import BlockPageConfig, PolicyConfig
from sinkdns.model import Outcome, Response
from sinkdns.policy.customers import Defaults
from sinkdns.policy.loader import LoadState, load
from sinkdns.resolvers.policy import PolicyStage
from sinkdns.wire.parse import parse_query

EXPLAIN_TYPES = ("A", "AAAA", "HTTPS", "MX", "TXT", "ANY")


def check_command(zones_dir: str, strict: bool, as_json: bool, out: TextIO) -> int:
    """Load every file as the server would; 1 when any file has an error (or, with `strict`, a warning)."""
    state = load(zones_dir)
    errors = state.errors
    warnings = state.warning_count
    status = 1 if errors or (strict and warnings) else 0
    if as_json:
        json.dump(_check_doc(state, status), out, indent=2)
        out.write("\n")
        return status
    out.write(f"{zones_dir}: {len(state.files)} files, {len(state.index.customer_counts)} customers, "
              f"{len(state.index)} rules\n")
    if state.error:
        out.write(f"  ERROR {state.error}\n")
    for name, f in state.files.items():
        if f.error:
            out.write(f"  {name:<32} {f.format:<8} ERROR {f.error}\n")
            continue
        rules = f.rules
        count = rules.count if rules else 0
        extra = f", {rules.skipped} skipped" if rules and rules.skipped else ""
        extra += f", {rules.unsupported} unsupported" if rules and rules.unsupported else ""
        out.write(f"  {name:<32} {f.format:<8} {count} rules{extra}\n")
        for warning in rules.warnings if rules else ():
            out.write(f"      warning: {warning}\n")
        if rules and rules.warning_count > len(rules.warnings):
            out.write(f"      ... and {rules.warning_count - len(rules.warnings)} more\n")
    out.write("customers:\n")
    for customer, count in sorted(state.index.customer_counts.items()):
        out.write(f"  {customer:<32} {count} rules\n")
    out.write(f"{len(errors)} errors, {warnings} warnings: {'FAIL' if status else 'OK'}\n")
    return status


def _check_doc(state: LoadState, status: int) -> dict:
    return {
        "zones_dir": state.zones_dir,
        "ok": status == 0,
        "error": state.error,
        "files": [
            {
                "file": name,
                "format": f.format,
                "customer": f.customer.id if f.customer else name.rsplit(".", 1)[0],
                "rules": f.rules.count if f.rules and not f.error else 0,
                "skipped": f.rules.skipped if f.rules and not f.error else 0,
                "unsupported": f.rules.unsupported if f.rules and not f.error else 0,
                "warnings": list(f.rules.warnings) if f.rules and not f.error else [],
                "error": f.error,
            }
            for name, f in state.files.items()
        ],
        "customers": dict(sorted(state.index.customer_counts.items())),
        "errors": state.errors,
        "warnings": state.warning_count,
    }


def explain_command(name: str, qtype: str, zones_dir: str, policy_config: PolicyConfig,
                    blockpage_config: BlockPageConfig, out: TextIO) -> int:
    """Say what sinkdns would answer for NAME and why; 0, or 2 when NAME or the type cannot be used."""
    try:
        if not name.isascii():
            name = idna.encode(name.rstrip("."), uts46=True).decode("ascii")
        types = [dns.rdatatype.from_text(t) for t in ((qtype,) if qtype else EXPLAIN_TYPES)]
        queries = [dns.message.make_query(name, t, use_edns=0) for t in types]
    except (idna.IDNAError, UnicodeError, dns.exception.DNSException, ValueError) as exc:
        out.write(f"cannot explain {name!r}: {exc}\n")
        return 2
    defaults = Defaults.from_config(policy_config, blockpage_config)
    state = load(zones_dir, None, defaults)
    for error in state.errors:
        out.write(f"note: {error}\n")
    forwarded = Response(None, Outcome.FORWARDED)
    stage = PolicyStage(lambda req: forwarded, lambda: state.index, policy_config, blockpage_config)
    now = time.time()
    first = parse_query(queries[0].to_wire(), ("127.0.0.1", 0), "udp", 0.0)
    assert first is not None
    out.write(f"name: {first.qname}\n")
    if first.qname in stage.canaries:
        out.write("decision: nxdomain (built-in resolver-bypass canary)\n")
    rule = state.index.match_name(first.qname, now)
    if rule is None:
        out.write("decision: no rule matches; the query would be forwarded\n")
    else:
        d, a = rule.decision, rule.action
        out.write(f"decision: {d.action}\nrule: {d.rule} ({d.source})\n")
        out.write(f"customer: {a.customer} ({a.organisation})\nreason: {a.reason}\nlink: {a.link}\n")
        out.write(f"contact: {a.contact}\nede: {a.ede}\nttl: {a.ttl}\n")
        if a.since:
            out.write(f"since: {a.since}\n")
        if a.until is not None:
            out.write(f"until: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(a.until))}\n")
    if state.index.has_name_rules or state.index.has_response_ip_rules:
        out.write("forwarded answers are still checked: CNAME targets against name rules"
                  + (", addresses against rpz-ip rules" if state.index.has_response_ip_rules else "") + "\n")
    out.write("answers:\n")
    for query in queries:
        req = parse_query(query.to_wire(), ("127.0.0.1", 0), "udp", 0.0)
        assert req is not None
        resp = stage(req)
        _describe(dns.rdatatype.to_text(query.question[0].rdtype), resp, out)
    return 0


def _describe(qtype: str, resp: Response, out: TextIO) -> None:
    if not isinstance(resp, Response) or resp.outcome == Outcome.FORWARDED:
        out.write(f"  {qtype:<6} forwarded upstream\n")
        return
    if resp.wire is None:
        out.write(f"  {qtype:<6} nothing (dropped)\n")
        return
    msg = dns.message.from_wire(resp.wire)
    flags = " TC" if msg.flags & dns.flags.TC else ""
    records = [rr.to_text() for section in (msg.answer, msg.authority) for rr in section]
    out.write(f"  {qtype:<6} {dns.rcode.to_text(msg.rcode())}{flags}: {' | '.join(records) or '(empty)'}\n")
    for option in msg.options:
        if option.otype == dns.edns.OptionType.EDE:
            out.write(f"         EDE {option.code}: {option.text}\n")
