"""spf_readiness(): each reason of the SPFReady condition, with the in-memory resolver."""

from __future__ import annotations

import pytest

from postmaster.checks.spf import SpfReason, spf_readiness
from tests.fixtures.dns import InMemoryDns

PROVIDER = "_spf.provider.example"


def world(record: str | None, *extra: str) -> InMemoryDns:
    dns = InMemoryDns().add(PROVIDER, "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    if record is not None:
        dns.add("example.com", "TXT", record)
    for text in extra:
        dns.add("example.com", "TXT", text)
    return dns


async def ready(
    dns: InMemoryDns, *, includes: list[str] | None = None, ips: list[str] | None = None, domain: str = "example.com"
):  # type: ignore[no-untyped-def]
    return await spf_readiness(
        domain,
        authorized_includes=[PROVIDER] if includes is None else includes,
        authorized_ips=ips or [],
        resolver=dns,
    )


async def test_ready_when_the_provider_is_included_and_the_record_ends_in_softfail() -> None:
    verdict = await ready(world(f"v=spf1 include:{PROVIDER} ~all"))
    assert verdict.reason is SpfReason.READY
    assert verdict.status == "True"
    assert verdict.dns_lookups == 1
    assert f"include:{PROVIDER}" in verdict.message


async def test_ready_when_the_include_is_reached_through_another_include_or_redirect() -> None:
    dns = (
        world("v=spf1 include:_spf.example.com -all")
        .add("_spf.example.com", "TXT", "v=spf1 redirect=_inner.example.com")
        .add("_inner.example.com", "TXT", f"v=spf1 include:{PROVIDER} -all")
    )
    verdict = await ready(dns)
    assert verdict.reason is SpfReason.READY, verdict.message


async def test_record_missing_proposes_the_record_to_publish() -> None:
    verdict = await ready(world(None, "google-site-verification=xyz"))
    assert verdict.reason is SpfReason.RECORD_MISSING
    assert verdict.status == "False"
    assert verdict.suggested_record == f"v=spf1 include:{PROVIDER} ~all"
    assert f'"v=spf1 include:{PROVIDER} ~all"' in verdict.message


async def test_multiple_records_proposes_one_merged_record() -> None:
    verdict = await ready(world("v=spf1 ip4:192.0.2.1 -all", f"v=spf1 include:{PROVIDER} ~all"))
    assert verdict.reason is SpfReason.MULTIPLE_RECORDS
    assert verdict.suggested_record == f"v=spf1 ip4:192.0.2.1 include:{PROVIDER} -all"


async def test_too_many_dns_lookups_counts_the_whole_include_tree() -> None:
    dns = world(f"v=spf1 include:{PROVIDER} include:big.example.net -all")
    inner = " ".join(f"a:h{n}.example.net" for n in range(10))
    dns.add("big.example.net", "TXT", f"v=spf1 {inner} -all")
    for n in range(10):
        dns.add(f"h{n}.example.net", "A", "203.0.113.1")
    verdict = await ready(dns)
    assert verdict.reason is SpfReason.TOO_MANY_DNS_LOOKUPS
    assert verdict.dns_lookups == 12
    assert "needs 12 DNS lookups" in verdict.message
    assert "include:big.example.net 11" in verdict.message


async def test_include_loop_is_reported_as_too_many_lookups_naming_the_loop() -> None:
    dns = world(f"v=spf1 include:{PROVIDER} include:a.example.net -all")
    dns.add("a.example.net", "TXT", "v=spf1 include:b.example.net -all")
    dns.add("b.example.net", "TXT", "v=spf1 include:a.example.net -all")
    verdict = await ready(dns)
    assert verdict.reason is SpfReason.TOO_MANY_DNS_LOOKUPS
    assert "a.example.net -> b.example.net -> a.example.net" in verdict.message


async def test_too_many_void_lookups_names_the_terms() -> None:
    verdict = await ready(
        world(f"v=spf1 include:{PROVIDER} a:old1.example.com a:old2.example.com mx:old3.example.com -all")
    )
    assert verdict.reason is SpfReason.TOO_MANY_VOID_LOOKUPS
    assert verdict.void_lookups == 3
    assert "a:old1.example.com" in verdict.message
    assert "mx:old3.example.com" in verdict.message


async def test_provider_not_authorized_proposes_adding_the_include_before_all() -> None:
    verdict = await ready(world("v=spf1 ip4:192.0.2.1 -all"))
    assert verdict.reason is SpfReason.PROVIDER_NOT_AUTHORIZED
    assert verdict.suggested_record == f"v=spf1 ip4:192.0.2.1 include:{PROVIDER} -all"
    assert "include:_spf.provider.example is missing" in verdict.message


async def test_include_after_all_does_not_authorize() -> None:
    verdict = await ready(world(f"v=spf1 -all include:{PROVIDER}"))
    assert verdict.reason is SpfReason.PROVIDER_NOT_AUTHORIZED


async def test_provider_authorized_by_its_addresses_passing_check_host() -> None:
    dns = world("v=spf1 ip4:198.51.100.0/24 -all")
    verdict = await ready(dns, includes=[], ips=["198.51.100.7"])
    assert verdict.reason is SpfReason.READY
    verdict = await ready(dns, includes=[], ips=["203.0.113.7"])
    assert verdict.reason is SpfReason.PROVIDER_NOT_AUTHORIZED
    assert verdict.suggested_record == "v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.7 -all"


async def test_addresses_passing_authorize_even_without_the_include() -> None:
    verdict = await ready(world("v=spf1 ip4:198.51.100.0/24 -all"), ips=["198.51.100.9"])
    assert verdict.reason is SpfReason.READY


@pytest.mark.parametrize(
    ("record", "said"),
    [
        (f"v=spf1 include:{PROVIDER} +all", 'ends in "+all"'),
        (f"v=spf1 include:{PROVIDER} ?all", 'ends in "?all"'),
        (f"v=spf1 include:{PROVIDER} all", 'ends in "all"'),
        (f"v=spf1 include:{PROVIDER}", 'has no "all" term'),
    ],
)
async def test_permissive_all(record: str, said: str) -> None:
    verdict = await ready(world(record))
    assert verdict.reason is SpfReason.PERMISSIVE_ALL
    assert said in verdict.message
    assert verdict.suggested_record == f"v=spf1 include:{PROVIDER} ~all"


async def test_permissive_through_an_included_plus_all() -> None:
    dns = world(f"v=spf1 include:{PROVIDER} include:open.example.net -all")
    dns.add("open.example.net", "TXT", "v=spf1 +all")
    verdict = await ready(dns)
    assert verdict.reason is SpfReason.PERMISSIVE_ALL
    assert 'through "include:open.example.net"' in verdict.message


async def test_syntax_error_names_the_term() -> None:
    verdict = await ready(world(f"v=spf1 include:{PROVIDER} ip4:192.0.2.1/40 -all"))
    assert verdict.reason is SpfReason.SYNTAX_ERROR
    assert '"ip4:192.0.2.1/40"' in verdict.message


async def test_syntax_error_in_an_included_record_names_that_domain() -> None:
    dns = world(f"v=spf1 include:{PROVIDER} include:bad.example.net -all")
    dns.add("bad.example.net", "TXT", "v=spf1 ipv4:192.0.2.1 -all")
    verdict = await ready(dns)
    assert verdict.reason is SpfReason.SYNTAX_ERROR
    assert "bad.example.net" in verdict.message
    assert '"ipv4:192.0.2.1"' in verdict.message


async def test_include_of_a_domain_without_spf_is_reported() -> None:
    verdict = await ready(world(f"v=spf1 include:{PROVIDER} include:gone.example.net -all"))
    assert verdict.reason is SpfReason.RECORD_MISSING
    assert "include:gone.example.net" in verdict.message


async def test_string_too_long_proposes_split_strings() -> None:
    long_record = f"v=spf1 include:{PROVIDER} " + " ".join(f"ip4:192.0.2.{n}" for n in range(30)) + " -all"
    assert len(long_record) > 255
    verdict = await ready(world(long_record))
    assert verdict.reason is SpfReason.STRING_TOO_LONG
    assert verdict.message.count('" "') == 1  # two strings


async def test_long_record_split_into_strings_is_fine() -> None:
    long_record = f"v=spf1 include:{PROVIDER} " + " ".join(f"ip4:192.0.2.{n}" for n in range(30)) + " -all"
    dns = InMemoryDns().add(PROVIDER, "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    dns.add("example.com", "TXT", (long_record[:250], long_record[250:]))
    assert len(long_record) - 250 <= 255
    verdict = await ready(dns)
    assert verdict.reason is SpfReason.READY, verdict.message


@pytest.mark.parametrize(
    ("how", "reason"), [("timeout", SpfReason.DNS_TIMEOUT), ("servfail", SpfReason.DNS_SERVER_FAILURE)]
)
async def test_transient_dns_errors_are_unknown_not_a_verdict(how: str, reason: SpfReason) -> None:
    verdict = await ready(world(f"v=spf1 include:{PROVIDER} -all").fail("example.com", "TXT", how))
    assert verdict.reason is reason
    assert verdict.status == "Unknown"
    verdict = await ready(world(f"v=spf1 include:{PROVIDER} -all").fail(PROVIDER, "TXT", how))
    assert verdict.reason is reason
    assert verdict.status == "Unknown"
