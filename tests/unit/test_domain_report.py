"""The DomainReport the operator consumes: conditions, status.records shape, provider CNAME hints."""

from __future__ import annotations

from postmaster.checks.dkim import DkimSelector, generate_key, provider_cname_target, txt_value
from postmaster.checks.domain import check_domain
from tests.fixtures.dns import InMemoryDns

KEY = generate_key("ed25519")


async def test_conditions_and_status_records_for_a_domain_half_done() -> None:
    dns = InMemoryDns(
        {
            "example.com": {"TXT": ["v=spf1 include:_spf.mailer.test ~all"]},
            "_spf.mailer.test": {"TXT": ["v=spf1 ip4:198.51.100.0/24 -all"]},
            "pm20260101._domainkey.example.com": {"TXT": [txt_value(KEY)]},
        }
    )
    report = await check_domain(
        "Example.COM.",
        spf_includes=["include:_spf.mailer.test"],
        selectors=[("pm20260101", KEY.p)],
        minimum_policy="reject",
        resolver=dns,
    )
    assert report.domain == "example.com"
    assert {name: (v.status, v.reason) for name, v in report.conditions.items()} == {
        "SPFReady": ("True", "Ready"),
        "DKIMReady": ("True", "Published"),
        "DMARCReady": ("False", "RecordMissing"),
    }
    assert report.status == "False"
    assert [r.as_status() for r in report.records] == [
        {
            "name": "example.com",
            "type": "TXT",
            "value": "v=spf1 include:_spf.mailer.test ~all",
            "purpose": "SPF: authorises include:_spf.mailer.test to send for example.com. A domain has exactly one "
            "v=spf1 record: replace the existing one, keeping other senders you still use",
            "published": True,
        },
        {
            "name": "pm20260101._domainkey.example.com",
            "type": "TXT",
            "value": f"v=DKIM1; k=ed25519; p={KEY.p}",
            "purpose": "DKIM: public key of selector pm20260101 (signing key)",
            "published": True,
        },
        {
            "name": "_dmarc.example.com",
            "type": "TXT",
            "value": "v=DMARC1; p=reject",
            "purpose": "DMARC: policy p=reject or stricter for example.com",
            "published": False,
        },
    ]


async def test_provider_selectors_become_cname_records_with_the_documented_target() -> None:
    selectors = [
        DkimSelector(s, cname_target=provider_cname_target("office365", s, "example.com"))
        for s in ("selector1", "selector2")
    ]
    report = await check_domain("example.com", selectors=selectors, resolver=InMemoryDns())
    cnames = [(r.name, r.type, r.value, r.published) for r in report.records if r.type == "CNAME"]
    assert cnames == [
        (
            "selector1._domainkey.example.com",
            "CNAME",
            "selector1-example-com._domainkey.<tenant>.onmicrosoft.com",
            False,
        ),
        (
            "selector2._domainkey.example.com",
            "CNAME",
            "selector2-example-com._domainkey.<tenant>.onmicrosoft.com",
            False,
        ),
    ]
    assert report.records[1].zone_value == "selector1-example-com._domainkey.<tenant>.onmicrosoft.com."


async def test_unknown_dns_leaves_published_empty() -> None:
    dns = InMemoryDns()
    for name in ("example.com", "_dmarc.example.com", "s1._domainkey.example.com"):
        dns.fail(name, "TXT", "timeout")
    report = await check_domain("example.com", selectors=["s1"], resolver=dns)
    assert report.status == "Unknown"
    assert {r.published for r in report.records} == {None}
    assert all("published" not in r.as_status() for r in report.records)
