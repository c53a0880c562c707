"""`postmaster check ...`: run the operator's DNS checks from a shell.

    postmaster check spf IP SENDER [--helo NAME] [--nameserver HOST:PORT] [--json]
    postmaster check domain DOMAIN... [--provider PRESET] [--selector S ...] [--nameserver HOST:PORT] [--json]

`check spf` evaluates RFC 7208's check_host() for a connecting address and a MAIL FROM address, as a
receiving server would, and prints the result. Exit status: 0 for pass, 75 (EX_TEMPFAIL) for temperror,
1 for every other result.

`check domain` checks the SPF, DKIM and DMARC readiness of many sending domains at once (one DNS cache
shared by all), as the operator does for a SendingDomain, and prints a table (or JSON) with what is wrong
and the records to publish. `--provider` fills the SPF include and, for providers that manage DKIM keys
(office365, sendgrid), the CNAME selectors. Exit status: 0 when every domain is ready, 1 when any check
is False, 75 (EX_TEMPFAIL) when DNS did not answer for some and nothing is False.

Each sub-verb is one `_register_*` function in `_CHECKS`.
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


def _register_domain(checks: Any) -> None:
    from postmaster.providers.catalog import Preset

    domain = checks.add_parser(
        "domain",
        help="check SPF, DKIM and DMARC readiness of sending domains",
        description=(
            "Check the SPF, DKIM and DMARC records of each DOMAIN as the operator does for a SendingDomain, "
            "and list the records to publish."
        ),
    )
    domain.add_argument("domains", nargs="+", metavar="DOMAIN", help="sending domains to check")
    domain.add_argument(
        "--provider",
        choices=[p.value for p in Preset],
        metavar="PRESET",
        help="mail provider preset: fills the SPF include and provider-managed DKIM selectors",
    )
    domain.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="S",
        help="DKIM selector to check (repeatable; default: the preset's provider-managed selectors)",
    )
    domain.add_argument(
        "--include", action="append", default=[], metavar="DOMAIN", help="extra SPF include: to require"
    )
    domain.add_argument("--ip", action="append", default=[], metavar="NETWORK", help="extra SPF ip4:/ip6: to require")
    domain.add_argument("--all", choices=["~", "-"], default="~", dest="all_qualifier", help="SPF all qualifier")
    domain.add_argument(
        "--min-policy",
        choices=["none", "quarantine", "reject"],
        default="none",
        help="weakest acceptable DMARC policy (default: none)",
    )
    domain.add_argument(
        "--report-address",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="DMARC aggregate report address the record must list (repeatable)",
    )
    domain.add_argument("--concurrency", type=int, default=64, help="domains checked at once (default: 64)")
    domain.add_argument("--json", action="store_true", help="print the reports as JSON")
    domain.add_argument("--verbose", "-v", action="store_true", help="details for ready domains too")
    add_dns_options(domain)
    domain.set_defaults(func=_cmd_domain)


_CHECKS: tuple[Callable[[Any], None], ...] = (_register_spf, _register_domain)


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


def _cmd_domain(args: argparse.Namespace) -> int:
    from postmaster.checks.domain import DomainReport

    reports: list[DomainReport] = asyncio.run(_check_domains(args))
    if args.json:
        print(json.dumps({"domains": [r.as_dict() for r in reports]}, indent=2))
    else:
        print(_domain_table(reports, verbose=args.verbose))
    statuses = {r.status for r in reports}
    if "False" in statuses:
        return 1
    return EX_TEMPFAIL if "Unknown" in statuses else 0


async def _check_domains(args: argparse.Namespace) -> list[Any]:
    from postmaster.checks.dkim import DkimSelector, provider_cname_target
    from postmaster.checks.domain import DomainReport, check_domain
    from postmaster.providers.catalog import preset_entry

    resolver = resolver_from(args)
    includes: list[str] = list(args.include)
    selectors: list[str] = list(args.selector)
    managed_by_provider = False
    if args.provider:
        entry = preset_entry(args.provider)
        if entry.spf_include and entry.spf_include not in includes:
            includes.insert(0, entry.spf_include)
        managed_by_provider = entry.dkim == "provider-cname"
        if not selectors and managed_by_provider:
            selectors = list(entry.dkim_selectors)
    limit = asyncio.Semaphore(max(1, args.concurrency))

    async def one(domain: str) -> DomainReport:
        wanted = [
            DkimSelector(
                s, cname_target=provider_cname_target(args.provider, s, domain) if managed_by_provider else None
            )
            for s in selectors
        ]
        async with limit:
            return await check_domain(
                domain,
                spf_includes=includes,
                spf_ips=list(args.ip),
                all_qualifier=args.all_qualifier,
                selectors=wanted,
                minimum_policy=args.min_policy,
                report_addresses=list(args.report_address),
                resolver=resolver,
            )

    return list(await asyncio.gather(*(one(d) for d in args.domains)))


def _domain_table(reports: list[Any], *, verbose: bool) -> str:
    rows = [("DOMAIN", "SPF", "DKIM", "DMARC", "READY")]
    for r in reports:
        rows.append(
            (
                r.domain,
                f"{r.spf.status} {r.spf.reason.value}",
                f"{r.dkim.status} {r.dkim.reason.value}",
                f"{r.dmarc.status} {r.dmarc.reason.value}",
                {"True": "yes", "False": "no"}.get(r.status, "unknown"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for r in reports:
        if r.ready and not verbose:
            continue
        lines += ["", f"{r.domain}:"]
        for label, verdict in (("SPF", r.spf), ("DKIM", r.dkim), ("DMARC", r.dmarc)):
            lines.append(f"  {label} {verdict.status} {verdict.reason.value}: {verdict.message}")
        lines.append("  records:")
        for record in r.records:
            state = {True: "published", False: "MISSING", None: "unknown"}[record.published]
            lines.append(f"    [{state}] {record.name} {record.type} {record.zone_value}")
            lines.append(f"        {record.purpose}")
    return "\n".join(lines)
