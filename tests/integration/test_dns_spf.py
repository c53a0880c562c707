"""SPF over real DNS: check_host() and spf_readiness() against zones served by nsd."""

from __future__ import annotations

import pytest

from postmaster.checks.dns import DnsCache, DnsResolver
from postmaster.checks.spf import SpfReason, SpfResultCode, check_host, spf_readiness
from tests.fixtures.dns import NsdServer, ServfailServer, SilentServer

PROVIDER = "_spf.mailer.test"


@pytest.fixture(scope="module")
def published(nsd: NsdServer) -> NsdServer:
    nsd.zones_bulk(
        {
            "mailer.test": """
_spf     TXT "v=spf1 ip4:198.51.100.0/24 include:_spf2.mailer.test -all"
_spf2    TXT "v=spf1 ip6:2001:db8:5::/48 -all"
alias    CNAME _spf
""",
            "good.spf.test": f'@ TXT "v=spf1 mx include:{PROVIDER} ~all"\n@ MX 10 mx\nmx A 192.0.2.25',
            "split.spf.test": f'@ TXT "v=spf1 ip4:192.0.2.0/24 " "include:{PROVIDER} -all"',
            "viacname.spf.test": '@ TXT "v=spf1 include:alias.mailer.test -all"',
            "many.spf.test": '@ TXT "v=spf1 '
            + " ".join(f"a:h{n}.many.spf.test" for n in range(10))
            + f' include:{PROVIDER} -all"\n'
            + "\n".join(f"h{n} A 203.0.113.{n}" for n in range(10)),
            "void.spf.test": f'@ TXT "v=spf1 a:gone1.void.spf.test a:gone2.void.spf.test '
            f'exists:gone3.void.spf.test include:{PROVIDER} -all"',
            "loop.spf.test": f'@ TXT "v=spf1 include:{PROVIDER} include:a.loop.spf.test -all"\n'
            'a TXT "v=spf1 include:b.loop.spf.test -all"\n'
            'b TXT "v=spf1 include:a.loop.spf.test -all"',
            "twice.spf.test": f'@ TXT "v=spf1 include:{PROVIDER} -all"\n@ TXT "v=spf1 ip4:192.0.2.1 -all"',
            "open.spf.test": f'@ TXT "v=spf1 include:{PROVIDER} +all"',
            "nothing.spf.test": '@ TXT "google-site-verification=abc"',
            "other.spf.test": '@ TXT "v=spf1 ip4:192.0.2.1 -all"',
            "syntax.spf.test": f'@ TXT "v=spf1 include:{PROVIDER} ip4:192.0.2.0/33 -all"',
            "macro.spf.test": """
@        TXT "v=spf1 exists:%{ir}.%{v}._allow.%{d} -all exp=why.%{d}"
1.2.0.192.in-addr._allow A 127.0.0.2
why      TXT "%{i} may not send for %{d}; see https://macro.spf.test/spf?s=%{S}"
""",
        }
    )
    return nsd


def resolver(server: NsdServer) -> DnsResolver:
    return DnsResolver([server.nameserver], cache=DnsCache(), timeout=1.0, attempts=1)


async def readiness(server: NsdServer, domain: str) -> object:
    return await spf_readiness(domain, authorized_includes=[PROVIDER], authorized_ips=[], resolver=resolver(server))


async def test_check_host_follows_includes_over_dns(published: NsdServer) -> None:
    dns = resolver(published)
    result = await check_host("2001:db8:5::9", "good.spf.test", "app@good.spf.test", resolver=dns)
    assert result.result is SpfResultCode.PASS
    assert result.mechanism == f"include:{PROVIDER}"
    assert result.dns_lookups == 3  # mx, include, nested include
    result = await check_host("192.0.2.25", "good.spf.test", "app@good.spf.test", resolver=dns)
    assert result.mechanism == "mx"
    result = await check_host("203.0.113.1", "good.spf.test", "app@good.spf.test", resolver=dns)
    assert result.result is SpfResultCode.SOFTFAIL


async def test_check_host_macros_and_explanation_over_dns(published: NsdServer) -> None:
    dns = resolver(published)
    passed = await check_host("192.0.2.1", "macro.spf.test", "a+b@macro.spf.test", resolver=dns)
    assert passed.result is SpfResultCode.PASS
    failed = await check_host("192.0.2.2", "macro.spf.test", "a+b@macro.spf.test", resolver=dns)
    assert failed.result is SpfResultCode.FAIL
    assert failed.explanation == (
        "192.0.2.2 may not send for macro.spf.test; see https://macro.spf.test/spf?s=a%2Bb%40macro.spf.test"
    )


@pytest.mark.parametrize("domain", ["good.spf.test", "split.spf.test", "viacname.spf.test"])
async def test_ready(published: NsdServer, domain: str) -> None:
    verdict = await readiness(published, domain)
    assert verdict.reason is SpfReason.READY, verdict.message  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("domain", "reason", "said"),
    [
        ("nothing.spf.test", SpfReason.RECORD_MISSING, f'"v=spf1 include:{PROVIDER} ~all"'),
        ("many.spf.test", SpfReason.TOO_MANY_DNS_LOOKUPS, "needs 12 DNS lookups"),
        ("void.spf.test", SpfReason.TOO_MANY_VOID_LOOKUPS, "exists:gone3.void.spf.test"),
        ("loop.spf.test", SpfReason.TOO_MANY_DNS_LOOKUPS, "a.loop.spf.test -> b.loop.spf.test -> a.loop.spf.test"),
        ("twice.spf.test", SpfReason.MULTIPLE_RECORDS, f'"v=spf1 include:{PROVIDER} ip4:192.0.2.1 -all"'),
        ("open.spf.test", SpfReason.PERMISSIVE_ALL, 'ends in "+all"'),
        ("other.spf.test", SpfReason.PROVIDER_NOT_AUTHORIZED, f'"v=spf1 ip4:192.0.2.1 include:{PROVIDER} -all"'),
        ("syntax.spf.test", SpfReason.SYNTAX_ERROR, '"ip4:192.0.2.0/33"'),
    ],
)
async def test_not_ready(published: NsdServer, domain: str, reason: SpfReason, said: str) -> None:
    verdict = await readiness(published, domain)
    assert verdict.reason is reason, verdict.message  # type: ignore[attr-defined]
    assert verdict.status == "False"  # type: ignore[attr-defined]
    assert said in verdict.message  # type: ignore[attr-defined]


async def test_check_host_on_broken_records_over_dns(published: NsdServer) -> None:
    dns = resolver(published)
    for domain in ("many.spf.test", "void.spf.test", "loop.spf.test", "twice.spf.test", "syntax.spf.test"):
        result = await check_host("192.0.2.99", domain, f"a@{domain}", resolver=dns)
        assert result.result is SpfResultCode.PERMERROR, domain


async def test_server_failure_is_unknown(servfail_server: ServfailServer) -> None:
    dns = DnsResolver([servfail_server.nameserver], cache=DnsCache(), timeout=1.0, attempts=1)
    verdict = await spf_readiness("good.spf.test", authorized_includes=[PROVIDER], authorized_ips=[], resolver=dns)
    assert verdict.reason is SpfReason.DNS_SERVER_FAILURE
    assert verdict.status == "Unknown"
    result = await check_host("192.0.2.1", "good.spf.test", "a@good.spf.test", resolver=dns)
    assert result.result is SpfResultCode.TEMPERROR


async def test_timeout_is_unknown(silent_server: SilentServer) -> None:
    dns = DnsResolver([silent_server.nameserver], cache=DnsCache(), timeout=0.2, attempts=1)
    verdict = await spf_readiness("good.spf.test", authorized_includes=[PROVIDER], authorized_ips=[], resolver=dns)
    assert verdict.reason is SpfReason.DNS_TIMEOUT
    assert verdict.status == "Unknown"


async def test_republished_record_is_seen_after_reload(nsd: NsdServer) -> None:
    nsd.zone("changing.spf.test", '@ TXT "v=spf1 +all"')
    assert (await readiness(nsd, "changing.spf.test")).reason is SpfReason.PROVIDER_NOT_AUTHORIZED  # type: ignore[attr-defined]
    nsd.zone("mailer2.test", '_spf TXT "v=spf1 ip4:198.51.100.0/24 -all"')
    nsd.zone("changing.spf.test", '@ TXT "v=spf1 include:_spf.mailer2.test -all"')
    verdict = await spf_readiness(
        "changing.spf.test", authorized_includes=["_spf.mailer2.test"], authorized_ips=[], resolver=resolver(nsd)
    )
    assert verdict.reason is SpfReason.READY
