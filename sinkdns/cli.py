"""The command line. Library code raises typed errors; only this module decides exit codes.

Exit codes: 0 success, 1 `check` found errors, 2 unusable configuration or command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Sequence

from sinkdns import __version__
from sinkdns import config as configuration
from sinkdns.errors import SinkdnsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sinkdns", description="A DNS-level blocking resolver.")
    parser.add_argument("--version", action="version", version=f"sinkdns {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="answer DNS queries")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--listen", action="append", metavar="ADDR:PORT", help="DNS address, UDP and TCP (repeatable; default 127.0.0.1:1053)")
    serve.add_argument("--upstream", action="append", metavar="ADDR[:PORT]", help="upstream server (repeatable; default: /etc/resolv.conf)")
    serve.add_argument("--zones", metavar="DIR", help="policy directory (default ./zones)")
    serve.add_argument("--block-ip", action="append", metavar="IPV4", help="address of the block-page host (repeatable)")
    serve.add_argument("--block-ipv6", action="append", metavar="IPV6", help="IPv6 address of the block-page host (repeatable)")
    serve.add_argument("--metrics", metavar="ADDR:PORT|off", help="Prometheus endpoint (default 127.0.0.1:9153)")
    serve.add_argument("--block-page", action="append", metavar="ADDR:PORT", help="block page over HTTP (repeatable)")
    serve.add_argument("--block-page-tls", action="append", metavar="ADDR:PORT", help="block page over HTTPS (repeatable)")
    serve.add_argument("--state-dir", metavar="DIR", help="where the local CA is kept")
    serve.add_argument("--workers", metavar="N", help="worker processes sharing the port (default 1)")
    serve.add_argument("--ready-file", metavar="PATH", help="write the bound addresses here as JSON once serving")
    serve.add_argument("--log-level", metavar="LEVEL", help="debug, info, warning or error (default info)")
    serve.add_argument("--query-log", metavar="PATH", help="write one JSON line per query here (default off)")
    serve.add_argument("--worker-control", type=int, help=argparse.SUPPRESS)

    check = commands.add_parser("check", help="validate the policy files")
    check.add_argument("dir", nargs="?", metavar="DIR", help="policy directory (default: the config's, ./zones)")
    check.add_argument("--config", metavar="FILE")
    check.add_argument("--strict", action="store_true", help="fail on warnings too")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    explain = commands.add_parser("explain", help="say what sinkdns would answer for a name, and why")
    explain.add_argument("name")
    explain.add_argument("--type", metavar="TYPE", help="one type (default: the common ones)")
    explain.add_argument("--zones", metavar="DIR")
    explain.add_argument("--config", metavar="FILE")

    ca = commands.add_parser("ca", help="the block page's local certificate authority")
    ca_commands = ca.add_subparsers(dest="ca_command", required=True, metavar="COMMAND")
    export = ca_commands.add_parser("export", help="print the CA certificate (PEM)")
    export.add_argument("--state-dir", metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args)
        if args.command == "explain":
            return _explain(args)
        return _ca_export(args)
    except SinkdnsError as exc:
        print(f"sinkdns: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    flags = {
        "listen": args.listen, "upstream": args.upstream, "zones": args.zones, "block_ip": args.block_ip,
        "block_ipv6": args.block_ipv6, "metrics": args.metrics, "block_page": args.block_page,
        "block_page_tls": args.block_page_tls, "state_dir": args.state_dir, "workers": args.workers,
        "ready_file": args.ready_file, "log_level": args.log_level, "query_log": args.query_log,
    }
    config = configuration.load(args.config, flags)
    from sinkdns import app, logs, supervisor
    from sinkdns.reconfigure import ConfigFile

    logs.setup(config.server.log_level)
    app.upstream_endpoints(config)  # refuse an unusable upstream list before any worker starts
    config_file = ConfigFile(args.config, flags) if args.config else None  # re-read on SIGHUP
    if config.server.workers > 1 and args.worker_control is None:
        main = supervisor.supervise(config, config_file, flags)
    else:
        main = app.serve(config, args.worker_control, config_file)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main)
    return 0


def _check(args: argparse.Namespace) -> int:
    from sinkdns.policy.report import check_command

    config = configuration.load(args.config, {"zones": args.dir})
    return check_command(config.policy.zones, args.strict, args.json, sys.stdout)


def _explain(args: argparse.Namespace) -> int:
    from sinkdns.policy.report import explain_command

    config = configuration.load(args.config, {"zones": args.zones})
    return explain_command(args.name, args.type or "", config.policy.zones, config.policy, config.blockpage, sys.stdout)


def _ca_export(args: argparse.Namespace) -> int:
    from sinkdns.blockpage import CertificateError, export_ca

    try:
        print(export_ca(args.state_dir or configuration.default_state_dir()), end="")
    except CertificateError as exc:
        print(f"sinkdns: {exc}", file=sys.stderr)
        return 2
    return 0


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
