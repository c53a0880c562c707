"""Benchmark: SPF readiness of many domains sharing one provider, through one shared DNS cache.

    .venv/bin/python tests/bench/bench_dns.py [--domains 1000]

Starts nsd on a free loopback port with N sending domains, each publishing
``v=spf1 include:_spf.provider.bench ~all``, and a provider whose record includes three netblock records
(as large providers do). Then runs `spf_readiness` for every domain at once, all sharing one
`DnsResolver` and its cache, and prints the DNS queries really sent against the distinct names asked,
and the wall time. The goal: at most one query per distinct name per TTL, however many checks ask.

A second, warm pass must send nothing; a baseline with a cache per check shows what sharing saves.
Exits non-zero if the shared pass sends more queries than there are distinct names.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fixtures.dns import running_nsd

from postmaster.checks.dns import DnsCache, DnsResolver
from postmaster.checks.spf import SpfReason, spf_readiness

PROVIDER = "_spf.provider.bench"


def zones(count: int) -> dict[str, str]:
    published = {
        "provider.bench": "\n".join(
            [
                '_spf TXT "v=spf1 include:_nb1.provider.bench include:_nb2.provider.bench '
                'include:_nb3.provider.bench ~all"',
                '_nb1 TXT "v=spf1 ip4:198.51.100.0/25 -all"',
                '_nb2 TXT "v=spf1 ip4:198.51.100.128/25 -all"',
                '_nb3 TXT "v=spf1 ip6:2001:db8:b::/48 -all"',
            ]
        )
    }
    for n in range(count):
        published[f"d{n:05d}.bench"] = f'@ TXT "v=spf1 include:{PROVIDER} ~all"'
    return published


async def readiness_of_all(domains: list[str], resolver_for: dict[str, DnsResolver]) -> list[SpfReason]:
    verdicts = await asyncio.gather(
        *(
            spf_readiness(d, authorized_includes=[PROVIDER], authorized_ips=[], resolver=resolver_for[d])
            for d in domains
        )
    )
    return [v.reason for v in verdicts]


async def bench(nameserver: str, domains: list[str]) -> bool:
    shared = DnsResolver([nameserver], cache=DnsCache(), timeout=2.0, lifetime=10.0)
    per_domain = dict.fromkeys(domains, shared)

    started = time.perf_counter()
    reasons = await readiness_of_all(domains, per_domain)
    cold = time.perf_counter() - started
    stats = shared.stats
    cold_sent, distinct = stats.queries_sent, len(stats.names_asked)
    not_ready = [r for r in reasons if r is not SpfReason.READY]

    started = time.perf_counter()
    await readiness_of_all(domains, per_domain)
    warm = time.perf_counter() - started
    warm_sent = stats.queries_sent - cold_sent

    isolated = {d: DnsResolver([nameserver], cache=DnsCache(), timeout=2.0, lifetime=10.0) for d in domains}
    started = time.perf_counter()
    await readiness_of_all(domains, isolated)
    baseline = time.perf_counter() - started
    baseline_sent = sum(r.stats.queries_sent for r in isolated.values())

    print(f"domains checked:                  {len(domains)} ({len(domains) - len(not_ready)} Ready)")
    print(
        f"shared cache, cold: queries sent  {cold_sent} for {distinct} distinct names "
        f"(coalesced {stats.coalesced}, cache hits {stats.cache_hits}) in {cold:.3f}s"
    )
    print(f"shared cache, warm: queries sent  {warm_sent} in {warm:.3f}s")
    print(f"a cache per check:  queries sent  {baseline_sent} in {baseline:.3f}s")
    ok = cold_sent <= distinct and warm_sent == 0 and not not_ready
    print("OK: at most one query per distinct name per TTL" if ok else "FAILED: more queries than names")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp,
        running_nsd(Path(tmp), zones=zones(args.domains)) as nsd,
    ):
        print(
            f"nsd on {nsd.nameserver} serving {args.domains + 1} zones (started in "
            f"{time.perf_counter() - started:.2f}s)"
        )
        domains = [f"d{n:05d}.bench" for n in range(args.domains)]
        return 0 if asyncio.run(bench(nsd.nameserver, domains)) else 1


if __name__ == "__main__":
    sys.exit(main())
