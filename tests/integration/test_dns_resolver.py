"""The DNS layer against a real nsd: outcomes, aliases, truncation, the shared cache, failures."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from pathlib import Path

import pytest

from postmaster.checks.dns import (
    CnameLoopError,
    DnsCache,
    DnsResolver,
    DnsServerFailureError,
    DnsTimeoutError,
    MxRecord,
    Status,
)
from tests.fixtures.dns import NsdServer, ServfailServer, SilentServer, running_nsd


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def zones(nsd: NsdServer) -> NsdServer:
    nsd.zones_bulk(
        {
            "resolver.test": """
txt     TXT "v=spf1 " "ip4:192.0.2.1 -all"
empty   MX 10 mail.resolver.test.
mail    A 192.0.2.25
mail    AAAA 2001:db8::25
@       MX 10 mail
@       MX 20 backup.other.test.
alias1  CNAME alias2
alias2  CNAME txt
far     CNAME target.other.test.
loop-a  CNAME loop-b
loop-b  CNAME loop-a
cross   CNAME away.other.test.
outside CNAME elsewhere.example.
""",
            "other.test": """
target  TXT "reached"
away    CNAME cross.resolver.test.
""",
            "2.0.192.in-addr.arpa": """
25      PTR mail.resolver.test.
""",
        }
    )
    big = "\n".join(f'big TXT "{n:02d}{"x" * 250}"' for n in range(8))  # about 2 KB: too big for UDP
    nsd.zone("big.test", big)
    return nsd


def resolver(server: NsdServer, **kwargs: object) -> DnsResolver:
    options: dict[str, object] = {"cache": DnsCache(), "timeout": 1.0, "lifetime": 3.0, "attempts": 1}
    options.update(kwargs)
    return DnsResolver([server.nameserver], **options)  # type: ignore[arg-type]


async def test_txt_record_keeps_its_character_strings(zones: NsdServer) -> None:
    answer = await resolver(zones).txt("txt.resolver.test")
    assert answer.status is Status.FOUND
    assert answer.records == ((b"v=spf1 ", b"ip4:192.0.2.1 -all"),)
    assert answer.ttl == 300


async def test_nxdomain_and_nodata_are_distinct(zones: NsdServer) -> None:
    dns = resolver(zones)
    missing = await dns.txt("nothing.resolver.test")
    assert missing.status is Status.NXDOMAIN
    assert missing.is_void
    nodata = await dns.txt("empty.resolver.test")
    assert nodata.status is Status.NODATA
    assert nodata.is_void


async def test_typed_answers_for_a_aaaa_mx_ptr(zones: NsdServer) -> None:
    dns = resolver(zones)
    assert (await dns.a("mail.resolver.test")).records == (ipaddress.IPv4Address("192.0.2.25"),)
    assert (await dns.aaaa("mail.resolver.test")).records == (ipaddress.IPv6Address("2001:db8::25"),)
    assert sorted((await dns.mx("resolver.test")).records) == [
        MxRecord(10, "mail.resolver.test"),
        MxRecord(20, "backup.other.test"),
    ]
    assert (await dns.ptr(ipaddress.IPv4Address("192.0.2.25"))).records == ("mail.resolver.test",)


async def test_cname_chain_in_one_zone_is_followed_from_one_answer(zones: NsdServer) -> None:
    dns = resolver(zones)
    answer = await dns.txt("alias1.resolver.test")
    assert answer.records == ((b"v=spf1 ", b"ip4:192.0.2.1 -all"),)
    assert answer.cname_chain == ("alias1.resolver.test", "alias2.resolver.test", "txt.resolver.test")
    assert dns.stats.queries_sent == 1  # nsd put the whole chain in its answer


async def test_cname_into_another_zone_is_followed(zones: NsdServer) -> None:
    dns = resolver(zones)
    answer = await dns.txt("far.resolver.test")
    assert answer.records == ((b"reached",),)
    assert answer.canonical_name == "target.other.test"


async def test_cname_target_missing_from_the_answer_is_asked_for(zones: NsdServer) -> None:
    """nsd answers a CNAME into a zone it does not serve with the CNAME alone; the target is asked next."""
    dns = resolver(zones)
    with pytest.raises(DnsServerFailureError, match="REFUSED"):
        await dns.txt("outside.resolver.test")
    assert dns.stats.names_asked == {("outside.resolver.test", "TXT"), ("elsewhere.example", "TXT")}


@pytest.mark.parametrize("name", ["loop-a.resolver.test", "cross.resolver.test"])
async def test_cname_loop_is_detected(zones: NsdServer, name: str) -> None:
    with pytest.raises(CnameLoopError, match="CNAME loop"):
        await resolver(zones).txt(name)


async def test_truncated_udp_answer_is_retried_over_tcp(zones: NsdServer) -> None:
    dns = resolver(zones)
    answer = await dns.txt("big.big.test")
    assert len(answer.records) == 8
    assert dns.stats.tcp_fallbacks == 1
    assert dns.stats.queries_sent == 2


async def test_answers_are_cached_for_their_ttl(zones: NsdServer) -> None:
    clock = FakeClock()
    dns = resolver(zones, cache=DnsCache(clock=clock))
    await dns.txt("txt.resolver.test")
    clock.now += 299
    again = await dns.txt("txt.resolver.test")
    assert dns.stats.queries_sent == 1
    assert again.ttl == pytest.approx(1)
    clock.now += 2
    await dns.txt("txt.resolver.test")
    assert dns.stats.queries_sent == 2


async def test_negative_answers_are_cached_for_the_soa_minimum(zones: NsdServer) -> None:
    clock = FakeClock()
    dns = resolver(zones, cache=DnsCache(clock=clock))
    await dns.txt("nothing.resolver.test")
    clock.now += 59
    await dns.txt("nothing.resolver.test")
    assert dns.stats.queries_sent == 1
    clock.now += 2
    await dns.txt("nothing.resolver.test")
    assert dns.stats.queries_sent == 2


async def test_identical_questions_in_flight_are_sent_once(zones: NsdServer) -> None:
    dns = resolver(zones)
    answers = await asyncio.gather(*(dns.txt("txt.resolver.test") for _ in range(200)))
    assert {a.records for a in answers} == {((b"v=spf1 ", b"ip4:192.0.2.1 -all"),)}
    assert dns.stats.queries_sent == 1
    assert dns.stats.coalesced == 199


async def test_resolvers_sharing_a_cache_share_answers(zones: NsdServer) -> None:
    cache = DnsCache()
    await resolver(zones, cache=cache).txt("txt.resolver.test")
    await resolver(zones, cache=cache).txt("txt.resolver.test")
    assert cache.stats.queries_sent == 1


async def test_servfail_is_a_transient_server_failure_and_not_cached(servfail_server: ServfailServer) -> None:
    dns = DnsResolver([servfail_server.nameserver], cache=DnsCache(), timeout=1.0, attempts=1)
    with pytest.raises(DnsServerFailureError, match="SERVFAIL"):
        await dns.txt("anything.test")
    with pytest.raises(DnsServerFailureError):
        await dns.txt("anything.test")
    assert dns.stats.queries_sent == 2


async def test_no_answer_is_a_timeout(silent_server: SilentServer) -> None:
    dns = DnsResolver([silent_server.nameserver], cache=DnsCache(), timeout=0.2, attempts=2, lifetime=5)
    started = time.monotonic()
    with pytest.raises(DnsTimeoutError) as caught:
        await dns.txt("anything.test")
    assert 0.35 < time.monotonic() - started < 2
    assert caught.value.reason == "DNSTimeout"


async def test_lifetime_bounds_the_whole_question(silent_server: SilentServer) -> None:
    dns = DnsResolver([silent_server.nameserver], cache=DnsCache(), timeout=5, attempts=3, lifetime=0.3)
    started = time.monotonic()
    with pytest.raises(DnsTimeoutError):
        await dns.txt("anything.test")
    assert time.monotonic() - started < 1


async def test_next_nameserver_is_tried_after_a_silent_one(
    zones: NsdServer, silent_server: SilentServer, servfail_server: ServfailServer
) -> None:
    dns = DnsResolver(
        [silent_server.nameserver, servfail_server.nameserver, zones.nameserver],
        cache=DnsCache(),
        timeout=0.2,
        attempts=1,
    )
    answer = await dns.txt("txt.resolver.test")
    assert answer.status is Status.FOUND
    assert dns.stats.queries_sent == 3


async def test_authoritative_mode_asks_the_zones_own_servers(nsd: NsdServer, tmp_path: Path) -> None:
    """Like cert-manager's DNS-01 self-check: find the zone's NS and ask them, not the configured resolver.

    The configured server still has an old version of the zone (as a recursive cache would); the zone's
    NS names a second server, on 127.0.0.2, that has the new one.
    """
    with running_nsd(tmp_path, address="127.0.0.2") as authority:
        nsd.zone("fresh.test", '@ NS ns\nns A 127.0.0.2\n@ TXT "old"')
        authority.zone("fresh.test", '@ NS ns\nns A 127.0.0.2\n@ TXT "new"')
        recursive = DnsResolver([nsd.nameserver], cache=DnsCache(), timeout=1.0)
        assert (await recursive.txt("fresh.test")).records == ((b"old",),)
        direct = DnsResolver(
            [nsd.nameserver], authoritative=True, authoritative_port=authority.port, cache=DnsCache(), timeout=1.0
        )
        assert (await direct.txt("fresh.test")).records == ((b"new",),)
        assert (await direct.txt("sub.fresh.test")).status is Status.NXDOMAIN
