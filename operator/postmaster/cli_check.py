"""`postmaster check ...`: run the operator's DNS checks from a shell.

    postmaster check spf IP SENDER [--helo NAME] [--nameserver HOST:PORT] [--json]

`check spf` evaluates RFC 7208's check_host() for a connecting address and a MAIL FROM address, as a
receiving server would, and prints the result. Exit status: 0 for pass, 75 (EX_TEMPFAIL) for temperror,
1 for every other result.

Each sub-verb is one `_register_*` function in `_CHECKS`; `check domain` (SPF, DKIM and DMARC readiness of
a sending domain) joins the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from collections.abc import Callable
from typing import Any

from postmaster.checks.dns import DnsResolver, parse_nameserver
from postmaster.checks.spf import MAX_DNS_LOOKUPS, MAX_VOID_LOOKUPS, SpfResult, SpfResultCode, check_host

EX_TEMPFAIL = 75


def _nameserver(text: str) -> str:
    try:
        parse_nameserver(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _ip(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 or IPv6 address") from exc
    return text


def add_dns_options(parser: argparse.ArgumentParser) -> None:
    """The options every DNS-reading check shares."""
    parser.add_argument(
        "--nameserver",
        action="append",
        type=_nameserver,
        metavar="HOST:PORT",
        help="DNS server to ask (repeatable; default: the system's resolv.conf)",
    )
    parser.add_argument(
        "--authoritative",
        action="store_true",
        help="ask each zone's own authoritative servers, found through its NS records, instead",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per DNS query (default: 3)")


def resolver_from(args: argparse.Namespace) -> DnsResolver:
    return DnsResolver(
        args.nameserver,
        authoritative=args.authoritative,
        timeout=args.timeout,
        lifetime=max(args.timeout * 3, 5.0),
    )


def _register_spf(checks: Any) -> None:
    spf = checks.add_parser(
        "spf",
        help="evaluate SPF (RFC 7208 check_host) for a sending address",
        description="Evaluate the SPF policy of SENDER's domain for a client at IP, as a receiver does.",
    )
    spf.add_argument("ip", type=_ip, metavar="IP", help="the connecting client's address")
    spf.add_argument("sender", metavar="SENDER", help="the MAIL FROM address; empty ('' or '<>') checks the HELO name")
    spf.add_argument("--helo", metavar="NAME", help="the HELO/EHLO name the client gave")
    spf.add_argument("--json", action="store_true", help="print the result as JSON")
    spf.add_argument("--trace", action="store_true", help="print each step of the evaluation")
    add_dns_options(spf)
    spf.set_defaults(func=_cmd_spf)


_CHECKS: tuple[Callable[[Any], None], ...] = (_register_spf,)


def register(subparsers: Any) -> None:
    """Add `check` and its sub-verbs to the `postmaster` parser's subparsers."""
    check = subparsers.add_parser("check", help="check DNS records the way receivers see them")
    verbs = check.add_subparsers(dest="check", required=True, metavar="CHECK")
    for add in _CHECKS:
        add(verbs)


def _cmd_spf(args: argparse.Namespace) -> int:
    sender: str = args.sender.strip()
    if sender in ("", "<>"):
        if not args.helo:
            print("postmaster check spf: an empty SENDER needs --helo (RFC 7208 section 2.3)", file=sys.stderr)
            return 2
        domain, sender = args.helo, f"postmaster@{args.helo}"
    else:
        domain = sender.rpartition("@")[2] or sender
    result = asyncio.run(check_host(args.ip, domain, sender, helo=args.helo, resolver=resolver_from(args)))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(_describe(result, args.ip, sender, trace=args.trace))
    if result.result is SpfResultCode.PASS:
        return 0
    return EX_TEMPFAIL if result.result is SpfResultCode.TEMPERROR else 1


def _describe(result: SpfResult, ip: str, sender: str, *, trace: bool) -> str:
    lines = [f"{result.result.value}: {ip} sending as {sender} (SPF of {result.domain})"]
    if result.record:
        lines.append(f"record: {result.record}")
    if result.mechanism:
        lines.append(f"matched: {result.mechanism} in the record of {result.matched_domain}")
    if result.problem:
        lines.append(f"problem: {result.problem}")
    if result.explanation:
        lines.append(f"explanation: {result.explanation}")
    lines.append(
        f"DNS lookups: {result.dns_lookups} of {MAX_DNS_LOOKUPS}, void lookups: "
        f"{result.void_lookups} of {MAX_VOID_LOOKUPS}"
    )
    if trace:
        lines.append("trace:")
        lines.extend(f"  {step}" for step in result.trace)
    return "\n".join(lines)
