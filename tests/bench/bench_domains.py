"""Benchmark: `check_domain` (SPF, DKIM, DMARC) over many domains sharing one provider, through one DNS cache.

    .venv/bin/python tests/bench/bench_domains.py [--domains 1000]

Starts nsd on a free loopback port serving the top-level domain ``bench`` (so the DMARC tree walk ends
inside nsd), a provider whose SPF record includes three netblock records, a report vendor that accepts
reports for every domain (a wildcard ``*._report._dmarc`` record), and N sending domains, each with
``v=spf1 include:_spf.provider.bench ~all``, an operator-managed 2048-bit DKIM key split over two strings
and ``v=DMARC1; p=quarantine; rua=mailto:dmarc@reports.bench``.

Then runs `check_domain` for every domain at once, all sharing one `DnsResolver` and its cache, and prints
the DNS queries really sent against the distinct names asked, and the wall time. A warm second pass must
send nothing; a baseline with a cache per domain shows what sharing saves. Exits non-zero if the shared
pass sends more queries than there are distinct names, the warm pass sends any, or a domain is not ready.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fixtures.dns import NsdServer

from postmaster.checks.dkim import DkimSelector, generate_key, txt_value
from postmaster.checks.dns import DnsCache, DnsResolver
from postmaster.checks.domain import DomainReport, check_domain
from postmaster.checks.spf import format_txt_strings

PROVIDER = "_spf.provider.bench"
SELECTOR = "pm20260101"
KEY = generate_key("rsa", 2048)


def zones(count: int) -> dict[str, str]:
    published = {
        "bench": "",
        "provider.bench": "\n".join(
            [
                '_spf TXT "v=spf1 include:_nb1.provider.bench include:_nb2.provider.bench '
                'include:_nb3.provider.bench ~all"',
                '_nb1 TXT "v=spf1 ip4:198.51.100.0/25 -all"',
                '_nb2 TXT "v=spf1 ip4:198.51.100.128/25 -all"',
                '_nb3 TXT "v=spf1 ip6:2001:db8:b::/48 -all"',
            ]
        ),
        "reports.bench": '*._report._dmarc TXT "v=DMARC1"',
    }
    dkim = format_txt_strings(txt_value(KEY))
    for n in range(count):
        published[f"d{n:05d}.bench"] = "\n".join(
            [
                f'@ TXT "v=spf1 include:{PROVIDER} ~all"',
                f"{SELECTOR}._domainkey TXT {dkim}",
                '_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@reports.bench"',
            ]
        )
    return published


async def check_all(domains: list[str], resolver_for: dict[str, DnsResolver]) -> list[DomainReport]:
    return list(
        await asyncio.gather(
            *(
                check_domain(
                    d,
                    spf_includes=[PROVIDER],
                    selectors=[DkimSelector(SELECTOR, KEY.p)],
                    minimum_policy="quarantine",
                    report_addresses=["dmarc@reports.bench"],
                    resolver=resolver_for[d],
                )
                for d in domains
            )
        )
    )


class UnlimitedNsd(NsdServer):
    """nsd without response rate limiting: its default (200 answers a second to one source, then truncated
    "slips" that push clients to TCP) would measure the limiter, not the caches, in the baseline."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config.read_text()
        self.config.write_text(
            text.replace("server:\n", "server:\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n", 1)
        )


def new_resolver(nameserver: str) -> DnsResolver:
    return DnsResolver([nameserver], cache=DnsCache(), timeout=2.0, lifetime=15.0)


async def bench(nameserver: str, domains: list[str]) -> bool:
    shared = new_resolver(nameserver)
    per_domain = dict.fromkeys(domains, shared)

    started = time.perf_counter()
    reports = await check_all(domains, per_domain)
    cold = time.perf_counter() - started
    stats = shared.stats
    cold_sent, distinct = stats.queries_sent, len(stats.names_asked)
    not_ready = [r for r in reports if not r.ready]

    started = time.perf_counter()
    await check_all(domains, per_domain)
    warm = time.perf_counter() - started
    warm_sent = stats.queries_sent - cold_sent

    isolated = {d: new_resolver(nameserver) for d in domains}
    started = time.perf_counter()
    await check_all(domains, isolated)
    baseline = time.perf_counter() - started
    baseline_sent = sum(r.stats.queries_sent for r in isolated.values())

    print(f"domains checked:                  {len(domains)} ({len(domains) - len(not_ready)} ready)")
    print(
        f"shared cache, cold: queries sent  {cold_sent} for {distinct} distinct names "
        f"({distinct / len(domains):.2f} per domain; coalesced {stats.coalesced}, cache hits {stats.cache_hits}) "
        f"in {cold:.3f}s"
    )
    print(f"shared cache, warm: queries sent  {warm_sent} in {warm:.3f}s")
    print(f"a cache per domain: queries sent  {baseline_sent} in {baseline:.3f}s")
    for report in not_ready[:3]:
        print(f"not ready: {report.domain}: {report.spf.reason} {report.dkim.reason} {report.dmarc.reason}")
    ok = cold_sent <= distinct and warm_sent == 0 and not not_ready
    print("OK: at most one query per distinct name per TTL" if ok else "FAILED")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-domains-") as tmp:
        nsd = UnlimitedNsd(Path(tmp)).preload(zones(args.domains)).start()
        try:
            print(
                f"nsd on {nsd.nameserver} serving {args.domains + 3} zones (started in "
                f"{time.perf_counter() - started:.2f}s)"
            )
            domains = [f"d{n:05d}.bench" for n in range(args.domains)]
            return 0 if asyncio.run(bench(nsd.nameserver, domains)) else 1
        finally:
            nsd.stop()


if __name__ == "__main__":
    sys.exit(main())
