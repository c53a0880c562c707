"""check_selector and check_dkim over the in-memory DNS: every reason, and how selectors fold into DKIMReady."""

from __future__ import annotations

import pytest

from postmaster.checks.dkim import (
    DkimReason,
    DkimSelector,
    check_dkim,
    check_selector,
    generate_key,
    split_txt,
    txt_value,
)
from tests.fixtures.dns import InMemoryDns
from tests.unit.test_dkim_keys import small_rsa_p

KEY = generate_key("rsa", 2048)
OTHER = generate_key("rsa", 2048)
ED = generate_key("ed25519")


def dns_with(selector: str, *values: str | tuple[str, ...], domain: str = "example.test") -> InMemoryDns:
    return InMemoryDns().add(f"{selector}._domainkey.{domain}", "TXT", *values)


async def test_published_key_split_across_strings_matches_the_secret() -> None:
    dns = dns_with("pm20260101", tuple(split_txt(txt_value(KEY))))
    verdict = await check_selector("example.test", "pm20260101", expected_p=KEY.p, resolver=dns)
    assert verdict.reason is DkimReason.PUBLISHED
    assert verdict.status == "True"
    assert (verdict.key_type, verdict.key_bits) == ("rsa", 2048)
    assert verdict.record == txt_value(KEY)
    assert "(the key in the Secret)" in verdict.message
    assert dns.asked == [("pm20260101._domainkey.example.test", "TXT")]


async def test_stale_key_is_a_mismatch_naming_the_selector_and_the_record_to_publish() -> None:
    dns = dns_with("pm20260101", tuple(split_txt(txt_value(OTHER))))
    verdict = await check_selector("example.test", "pm20260101", expected_p=KEY.p, resolver=dns)
    assert verdict.reason is DkimReason.KEY_MISMATCH
    assert verdict.status == "False"
    assert "Selector pm20260101 at pm20260101._domainkey.example.test" in verdict.message
    assert KEY.p[:200] in verdict.message.replace('" "', "")


async def test_ed25519_key_and_whitespace_in_p() -> None:
    spaced = f"v=DKIM1; k=ed25519; p={ED.p[:20]} {ED.p[20:]}"
    verdict = await check_selector("example.test", "ed", expected_p=ED.p, resolver=dns_with("ed", spaced))
    assert verdict.reason is DkimReason.PUBLISHED
    assert verdict.key_type == "ed25519"


async def test_same_rsa_key_in_pkcs1_form_is_not_a_mismatch() -> None:
    import base64

    from cryptography.hazmat.primitives import serialization

    public = serialization.load_der_public_key(base64.b64decode(KEY.p))
    pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(pkcs1).decode()
    verdict = await check_selector(
        "example.test", "s", expected_p=KEY.p, resolver=dns_with("s", tuple(split_txt(record)))
    )
    assert verdict.reason is DkimReason.PUBLISHED


@pytest.mark.parametrize(
    ("records", "reason", "fragment"),
    [
        ((), DkimReason.RECORD_MISSING, "There is no DKIM key for selector sel"),
        (("v=DKIM1; p=",), DkimReason.KEY_REVOKED, "empty p="),
        (("v=DKIM1; k=rsa; p=!!",), DkimReason.INVALID_RECORD, "not valid base64"),
        (("v=DKIM1; k=ecdsa; p=AAAA",), DkimReason.INVALID_RECORD, "k=ecdsa"),
        (("v=spf1 -all",), DkimReason.INVALID_RECORD, "invalid"),
        (("v=DKIM1; p=AAAA", "v=DKIM1; p=BBBB"), DkimReason.MULTIPLE_RECORDS, "holds 2 TXT records"),
    ],
)
async def test_selector_reasons(records: tuple[str, ...], reason: DkimReason, fragment: str) -> None:
    dns = dns_with("sel", *records) if records else InMemoryDns()
    verdict = await check_selector("example.test", "sel", expected_p=KEY.p, resolver=dns)
    assert verdict.reason is reason
    assert verdict.status == "False"
    assert fragment in verdict.message
    assert "Publish this TXT record at sel._domainkey.example.test" in verdict.message


async def test_weak_and_short_rsa_keys() -> None:
    weak = await check_selector(
        "example.test", "old", expected_p=None, resolver=dns_with("old", "v=DKIM1; p=" + small_rsa_p(512))
    )
    assert weak.reason is DkimReason.WEAK_KEY
    assert weak.status == "False"
    assert "512-bit" in weak.message
    assert "1024" in weak.message
    short = generate_key("rsa", 1024)
    ok = await check_selector("example.test", "mid", expected_p=short.p, resolver=dns_with("mid", txt_value(short)))
    assert ok.reason is DkimReason.PUBLISHED
    assert ok.status == "True"
    assert "1024 bits" in ok.message
    assert "2048" in ok.message
    assert len(ok.warnings) == 1


async def test_provider_key_published_as_plain_txt_is_accepted_with_a_warning() -> None:
    verdict = await check_selector("example.test", "s1", expected_p=None, resolver=dns_with("s1", txt_value(KEY)))
    assert verdict.reason is DkimReason.PUBLISHED
    assert any("not a CNAME" in w for w in verdict.warnings)


async def test_missing_provider_selector_tells_how_to_get_the_cname() -> None:
    verdict = await check_selector(
        "example.test",
        "selector1",
        expected_p=None,
        resolver=InMemoryDns(),
        cname_target="selector1-example-test._domainkey.<tenant>.onmicrosoft.com",
    )
    assert verdict.reason is DkimReason.RECORD_MISSING
    assert "as a CNAME to selector1-example-test._domainkey.<tenant>.onmicrosoft.com" in verdict.message
    assert verdict.cname_hint == "selector1-example-test._domainkey.<tenant>.onmicrosoft.com"


@pytest.mark.parametrize(("how", "reason"), [("timeout", "DNSTimeout"), ("servfail", "DNSServerFailure")])
async def test_transient_failures_are_unknown(how: str, reason: str) -> None:
    dns = InMemoryDns().fail("sel._domainkey.example.test", "TXT", how)
    verdict = await check_selector("example.test", "sel", expected_p=KEY.p, resolver=dns)
    assert verdict.reason.value == reason
    assert verdict.status == "Unknown"


async def test_check_dkim_without_selectors_is_false() -> None:
    verdict = await check_dkim("example.test", [], resolver=InMemoryDns())
    assert verdict.reason is DkimReason.NO_SELECTORS
    assert verdict.status == "False"


async def test_check_dkim_pending_key_does_not_decide_while_active_is_published() -> None:
    nxt = generate_key("ed25519")
    dns = dns_with("pm20260101", tuple(split_txt(txt_value(KEY))))
    verdict = await check_dkim(
        "example.test",
        [DkimSelector("pm20260101", KEY.p), DkimSelector("pm20260701", nxt.p, required=False)],
        resolver=dns,
    )
    assert verdict.reason is DkimReason.PUBLISHED
    assert verdict.status == "True"
    assert "Next key pm20260701: not served yet (RecordMissing)" in verdict.message
    assert verdict.served_selectors == frozenset({"pm20260101"})
    dns.add("pm20260701._domainkey.example.test", "TXT", txt_value(nxt))
    again = await check_dkim(
        "example.test",
        [DkimSelector("pm20260101", KEY.p), DkimSelector("pm20260701", nxt.p, required=False)],
        resolver=dns,
    )
    assert again.served_selectors == frozenset({"pm20260101", "pm20260701"})


async def test_check_dkim_first_pending_key_decides_when_nothing_is_required() -> None:
    verdict = await check_dkim(
        "example.test", [DkimSelector("pm20260101", KEY.p, required=False)], resolver=InMemoryDns()
    )
    assert verdict.reason is DkimReason.RECORD_MISSING
    assert verdict.status == "False"


async def test_check_dkim_false_wins_over_unknown_and_all_are_named() -> None:
    dns = (
        InMemoryDns()
        .fail("a._domainkey.example.test", "TXT", "timeout")
        .add("b._domainkey.example.test", "TXT", "v=DKIM1; p=")
    )
    verdict = await check_dkim("example.test", [("a", KEY.p), ("b", KEY.p)], resolver=dns)
    assert verdict.reason is DkimReason.KEY_REVOKED
    assert verdict.status == "False"
    assert "selector b" in verdict.message
    assert "selector a" in verdict.message
    only_unknown = await check_dkim("example.test", [("a", KEY.p)], resolver=dns)
    assert only_unknown.status == "Unknown"
    assert only_unknown.reason is DkimReason.DNS_TIMEOUT
