"""DKIM selectors over real DNS: keys published by nsd, stale keys, split strings, provider CNAMEs."""

from __future__ import annotations

import pytest

from postmaster.checks.dkim import (
    DkimReason,
    DkimSelector,
    check_dkim,
    check_selector,
    generate_key,
    provider_cname_target,
    txt_value,
)
from postmaster.checks.dns import DnsCache, DnsResolver
from postmaster.checks.spf import format_txt_strings
from tests.fixtures.dns import NsdServer, ServfailServer, SilentServer
from tests.unit.test_dkim_keys import small_rsa_p

KEY = generate_key("rsa", 2048)
OTHER = generate_key("rsa", 2048)
ED = generate_key("ed25519")
PROVIDER_KEY = generate_key("rsa", 2048)
WEAK_P = small_rsa_p(512)


def zone_txt(value: str) -> str:
    """A TXT value as nsd's zone file wants it: quoted strings of at most 255 bytes."""
    return format_txt_strings(value)


@pytest.fixture(scope="module")
def published(nsd: NsdServer) -> NsdServer:
    nsd.zones_bulk(
        {
            "keys.dkim.test": "\n".join(
                [
                    f"pm20260101._domainkey TXT {zone_txt(txt_value(KEY))}",
                    f"ed._domainkey TXT {zone_txt(txt_value(ED))}",
                    'revoked._domainkey TXT "v=DKIM1; k=rsa; p="',
                    'garbled._domainkey TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"',
                ]
            ),
            "stale.dkim.test": f"pm20260101._domainkey TXT {zone_txt(txt_value(OTHER))}",
            # Microsoft 365: selector1/selector2 are CNAMEs into the tenant's onmicrosoft domain.
            "m365.dkim.test": "\n".join(
                [
                    "selector1._domainkey CNAME selector1-m365-dkim-test._domainkey.contoso.onmicrosoft.test.",
                    "selector2._domainkey CNAME selector2-m365-dkim-test._domainkey.contoso.onmicrosoft.test.",
                ]
            ),
            "onmicrosoft.test": "\n".join(
                [
                    f"selector1-m365-dkim-test._domainkey.contoso TXT {zone_txt(txt_value(PROVIDER_KEY))}",
                    f'selector2-m365-dkim-test._domainkey.contoso TXT "v=DKIM1; k=rsa; p={WEAK_P}"',
                ]
            ),
            # SendGrid: s1/s2 are CNAMEs to the account's sendgrid names; s2's target is not there (yet).
            "sg.dkim.test": "\n".join(
                [
                    "s1._domainkey CNAME s1.domainkey.u1234.wl.sendgrid.test.",
                    "s2._domainkey CNAME s2.domainkey.u1234.wl.sendgrid.test.",
                ]
            ),
            "sendgrid.test": f"s1.domainkey.u1234.wl TXT {zone_txt('k=rsa; p=' + PROVIDER_KEY.p)}",
            # Amazon SES Easy DKIM: token selectors, CNAMEs to <token>.dkim.amazonses.com; keys without v=.
            "ses.dkim.test": "ab12cd34ef._domainkey CNAME ab12cd34ef.dkim.amazonses.test.",
            "amazonses.test": f"ab12cd34ef.dkim TXT {zone_txt('p=' + PROVIDER_KEY.p)}",
        }
    )
    return nsd


def resolver(server: NsdServer | SilentServer | ServfailServer, *, timeout: float = 1.0) -> DnsResolver:
    return DnsResolver([server.nameserver], cache=DnsCache(), timeout=timeout, lifetime=3 * timeout, attempts=1)


async def test_published_key_split_across_strings_is_joined_and_matches(published: NsdServer) -> None:
    dns = resolver(published)
    verdict = await check_selector("keys.dkim.test", "pm20260101", expected_p=KEY.p, resolver=dns)
    assert verdict.reason is DkimReason.PUBLISHED
    assert verdict.status == "True"
    assert verdict.record == txt_value(KEY)  # 400-odd bytes: two strings on the wire, joined without a space
    assert verdict.key_bits == 2048
    ed = await check_selector("keys.dkim.test", "ed", expected_p=ED.p, resolver=dns)
    assert (ed.reason, ed.key_type) == (DkimReason.PUBLISHED, "ed25519")


async def test_stale_key_is_a_mismatch_naming_the_selector(published: NsdServer) -> None:
    verdict = await check_selector("stale.dkim.test", "pm20260101", expected_p=KEY.p, resolver=resolver(published))
    assert verdict.reason is DkimReason.KEY_MISMATCH
    assert verdict.status == "False"
    assert "Selector pm20260101 at pm20260101._domainkey.stale.dkim.test publishes a different public key" in (
        verdict.message
    )
    assert "Replace the record:" in verdict.message


async def test_revoked_invalid_and_missing(published: NsdServer) -> None:
    dns = resolver(published)
    revoked = await check_selector("keys.dkim.test", "revoked", expected_p=KEY.p, resolver=dns)
    assert revoked.reason is DkimReason.KEY_REVOKED
    garbled = await check_selector("keys.dkim.test", "garbled", expected_p=None, resolver=dns)
    assert garbled.reason is DkimReason.INVALID_RECORD
    assert "not a DER-encoded RSA public key" in garbled.message
    missing = await check_selector("keys.dkim.test", "pm20270101", expected_p=KEY.p, resolver=dns)
    assert missing.reason is DkimReason.RECORD_MISSING
    assert "(nxdomain)" in missing.message
    assert "Publish this TXT record at pm20270101._domainkey.keys.dkim.test" in missing.message


async def test_microsoft_365_cnames_valid_and_weak(published: NsdServer) -> None:
    domain = "m365.dkim.test"
    selectors = [
        DkimSelector(s, cname_target=provider_cname_target("office365", s, domain)) for s in ("selector1", "selector2")
    ]
    verdict = await check_dkim(domain, selectors, resolver=resolver(published))
    first, second = verdict.selectors
    assert first.reason is DkimReason.PUBLISHED
    assert first.cname_target == "selector1-m365-dkim-test._domainkey.contoso.onmicrosoft.test"
    assert "through the CNAME to selector1-m365-dkim-test._domainkey.contoso.onmicrosoft.test" in first.message
    assert second.reason is DkimReason.WEAK_KEY
    assert second.key_bits == 512
    assert "(a CNAME to selector2-m365-dkim-test._domainkey.contoso.onmicrosoft.test)" in second.message
    assert "Rotate the key to 2048 bits in the provider's console" in second.message
    assert (verdict.reason, verdict.status) == (DkimReason.WEAK_KEY, "False")
    assert verdict.served_selectors == frozenset({"selector1"})


async def test_sendgrid_cname_to_a_missing_target(published: NsdServer) -> None:
    verdict = await check_dkim("sg.dkim.test", ["s1", "s2"], resolver=resolver(published))
    s1, s2 = verdict.selectors
    assert s1.reason is DkimReason.PUBLISHED
    assert s1.cname_target == "s1.domainkey.u1234.wl.sendgrid.test"
    assert s2.reason is DkimReason.RECORD_MISSING
    assert "s2._domainkey.sg.dkim.test is a CNAME to s2.domainkey.u1234.wl.sendgrid.test, which does not exist" in (
        s2.message
    )
    assert verdict.reason is DkimReason.RECORD_MISSING


async def test_ses_easy_dkim_token_selector(published: NsdServer) -> None:
    verdict = await check_selector("ses.dkim.test", "ab12cd34ef", expected_p=None, resolver=resolver(published))
    assert verdict.reason is DkimReason.PUBLISHED
    assert verdict.cname_target == "ab12cd34ef.dkim.amazonses.test"
    assert verdict.warnings == ()


async def test_replacing_a_stale_key_in_the_zone_is_seen(nsd: NsdServer) -> None:
    nsd.zone("rotate.dkim.test", f"sel._domainkey TXT {zone_txt(txt_value(OTHER))}")
    before = await check_selector("rotate.dkim.test", "sel", expected_p=KEY.p, resolver=resolver(nsd))
    assert before.reason is DkimReason.KEY_MISMATCH
    nsd.zone("rotate.dkim.test", f"sel._domainkey TXT {zone_txt(txt_value(KEY))}")
    after = await check_selector("rotate.dkim.test", "sel", expected_p=KEY.p, resolver=resolver(nsd))
    assert after.reason is DkimReason.PUBLISHED


async def test_silent_server_is_unknown_timeout(silent_server: SilentServer) -> None:
    verdict = await check_selector(
        "keys.dkim.test", "pm20260101", expected_p=KEY.p, resolver=resolver(silent_server, timeout=0.2)
    )
    assert (verdict.status, verdict.reason) == ("Unknown", DkimReason.DNS_TIMEOUT)
    assert "will retry" in verdict.message


async def test_servfail_is_unknown_server_failure(servfail_server: ServfailServer) -> None:
    verdict = await check_selector("keys.dkim.test", "pm20260101", expected_p=KEY.p, resolver=resolver(servfail_server))
    assert (verdict.status, verdict.reason) == ("Unknown", DkimReason.DNS_SERVER_FAILURE)
