"""RFC 9989's DNS tree walk and DMARC readiness over the in-memory DNS."""

from __future__ import annotations

import pytest

from postmaster.checks.dmarc import (
    DmarcPolicy,
    DmarcReason,
    dmarc_readiness,
    psl_organizational_domain,
    tree_walk,
    walk_targets,
)
from tests.fixtures.dns import InMemoryDns


def test_walk_targets_follow_the_rfc_examples() -> None:
    # RFC 9989 section 4.10: eight queries for a twelve-label domain.
    assert walk_targets("a.b.c.d.e.f.g.h.i.j.mail.example.com") == [
        "a.b.c.d.e.f.g.h.i.j.mail.example.com",
        "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com",
        "i.j.mail.example.com",
        "j.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    ]
    # Section 5.1.8: the zone cut at b.c.d.e.f.g.example.com is never asked.
    assert walk_targets("mail.a.b.c.d.e.f.g.example.com") == [
        "mail.a.b.c.d.e.f.g.example.com",
        "c.d.e.f.g.example.com",
        "d.e.f.g.example.com",
        "e.f.g.example.com",
        "f.g.example.com",
        "g.example.com",
        "example.com",
        "com",
    ]
    assert walk_targets("A.Mail.Example.COM.") == ["a.mail.example.com", "mail.example.com", "example.com", "com"]
    assert walk_targets("com") == ["com"]
    # Eight labels: its parent (seven labels) is next, as with the shortcut.
    eight = "a.b.c.d.e.f.example.com"
    assert walk_targets(eight)[1] == "b.c.d.e.f.example.com"
    assert len(walk_targets(eight)) == 8
    seven = "b.c.d.e.f.example.com"
    assert len(walk_targets(seven)) == 7


async def test_organizational_domain_is_the_record_with_fewest_labels() -> None:
    dns = InMemoryDns(
        {
            "_dmarc.mail.example.com": {"TXT": ["v=DMARC1; p=none"]},
            "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        }
    )
    walk = await tree_walk("a.mail.example.com", dns)
    assert walk.organizational_domain == "example.com"
    assert walk.policy_step is not None
    assert walk.policy_step.domain == "example.com"  # not mail.example.com: policy comes from the org domain
    assert walk.inherited
    assert [name for name, _ in dns.asked] == [
        "_dmarc.a.mail.example.com",
        "_dmarc.mail.example.com",
        "_dmarc.example.com",
        "_dmarc.com",
    ]


async def test_psd_n_stops_the_walk_and_is_the_organizational_domain() -> None:
    dns = InMemoryDns(
        {
            "_dmarc.mail.example.com": {"TXT": ["v=DMARC1; p=quarantine; psd=n"]},
            "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        }
    )
    walk = await tree_walk("a.mail.example.com", dns)
    assert walk.organizational_domain == "mail.example.com"
    assert walk.policy_step is not None
    assert walk.policy_step.domain == "mail.example.com"
    assert [name for name, _ in dns.asked] == ["_dmarc.a.mail.example.com", "_dmarc.mail.example.com"]


async def test_psd_y_makes_the_name_one_label_below_the_organizational_domain() -> None:
    dns = InMemoryDns({"_dmarc.com": {"TXT": ["v=DMARC1; p=reject; psd=y; np=reject"]}})
    walk = await tree_walk("a.mail.example.com", dns)
    assert walk.organizational_domain == "example.com"
    assert walk.psd_step is not None
    assert walk.policy_step is walk.psd_step  # no org record: the PSD's applies


async def test_psd_y_at_the_start_is_its_own_organizational_domain() -> None:
    dns = InMemoryDns({"_dmarc.example": {"TXT": ["v=DMARC1; p=reject; psd=y"]}})
    walk = await tree_walk("example", dns)
    assert walk.organizational_domain == "example"
    assert not walk.inherited


async def test_no_record_anywhere_leaves_the_domain_its_own_organizational_domain() -> None:
    walk = await tree_walk("a.b.example.com", InMemoryDns())
    assert walk.organizational_domain == "a.b.example.com"
    assert walk.policy_step is None


async def test_multiple_records_at_a_name_are_discarded_and_the_walk_goes_on() -> None:
    dns = InMemoryDns(
        {
            "_dmarc.mail.example.com": {"TXT": ["v=DMARC1; p=none", "v=DMARC1; p=reject", "unrelated"]},
            "_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine"]},
        }
    )
    walk = await tree_walk("mail.example.com", dns)
    assert walk.own.outcome == "multiple"
    assert walk.policy_step is not None
    assert walk.policy_step.domain == "example.com"


async def test_the_shortcut_limits_queries_to_eight() -> None:
    dns = InMemoryDns()
    await tree_walk("a.b.c.d.e.f.g.h.i.j.mail.example.com", dns)
    assert len(dns.asked) == 8
    assert dns.asked[1] == ("_dmarc.g.h.i.j.mail.example.com", "TXT")


def test_psl_organizational_domain() -> None:
    assert psl_organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert psl_organizational_domain("mail.example.com") == "example.com"
    assert psl_organizational_domain("co.uk") == "co.uk"


# --------------------------------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------------------------------


async def test_ready_at_the_apex_names_alignment() -> None:
    dns = InMemoryDns({"_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.com"]}})
    verdict = await dmarc_readiness(
        "example.com", minimum_policy="quarantine", report_addresses=["d@example.com"], resolver=dns
    )
    assert verdict.reason is DmarcReason.READY
    assert verdict.status == "True"
    assert verdict.effective_policy is DmarcPolicy.REJECT
    assert "Alignment: DKIM strict (adkim=s), SPF relaxed (aspf=r)" in verdict.message
    assert "d=example.com exactly" in verdict.message
    assert verdict.suggested_record is None
    assert verdict.report_authorizations[0].external is False


async def test_record_missing_proposes_one() -> None:
    verdict = await dmarc_readiness(
        "example.com", minimum_policy="quarantine", report_addresses=["mailto:d@example.com"], resolver=InMemoryDns()
    )
    assert verdict.reason is DmarcReason.RECORD_MISSING
    assert verdict.status == "False"
    assert verdict.suggested_record == "v=DMARC1; p=quarantine; rua=mailto:d@example.com"
    assert 'Publish this TXT record at _dmarc.example.com: "v=DMARC1; p=quarantine; rua=mailto:d@example.com"' in (
        verdict.message
    )


async def test_subdomain_inherits_sp_and_np_applies_when_it_does_not_exist() -> None:
    dns = InMemoryDns({"_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; sp=none; np=reject"]}})
    dns.add("mail.example.com", "TXT", "v=spf1 -all")
    existing = await dmarc_readiness("mail.example.com", minimum_policy="quarantine", resolver=dns)
    assert existing.reason is DmarcReason.POLICY_TOO_WEAK
    assert "receivers apply sp= of _dmarc.example.com (sp=none)" in existing.message
    assert existing.record_name == "_dmarc.example.com"
    assert existing.suggested_name == "_dmarc.mail.example.com"
    assert existing.suggested_record == "v=DMARC1; p=quarantine"
    ghost = await dmarc_readiness("ghost.example.com", minimum_policy="quarantine", resolver=dns)
    assert ghost.reason is DmarcReason.READY
    assert ghost.effective_policy is DmarcPolicy.REJECT


async def test_testing_mode_lowers_the_policy() -> None:
    dns = InMemoryDns({"_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; t=y"]}})
    verdict = await dmarc_readiness("example.com", minimum_policy="reject", resolver=dns)
    assert verdict.reason is DmarcReason.POLICY_TOO_WEAK
    assert "t=y (testing) lowers it one level" in verdict.message
    assert verdict.suggested_record == "v=DMARC1; p=reject"


async def test_near_miss_at_the_domain_is_a_syntax_error() -> None:
    dns = InMemoryDns({"_dmarc.example.com": {"TXT": ["v=dmarc1; p=reject"]}})
    verdict = await dmarc_readiness("example.com", resolver=dns)
    assert verdict.reason is DmarcReason.SYNTAX_ERROR
    assert "case-sensitive" in verdict.message


async def test_multiple_records_say_what_receivers_fall_back_to() -> None:
    dns = InMemoryDns(
        {
            "_dmarc.mail.example.com": {"TXT": ["v=DMARC1; p=none", "v=DMARC1; p=reject"]},
            "_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine"]},
        }
    )
    verdict = await dmarc_readiness("mail.example.com", resolver=dns)
    assert verdict.reason is DmarcReason.MULTIPLE_RECORDS
    assert "they fall back to the record at _dmarc.example.com" in verdict.message


async def test_report_address_missing_and_external_destination() -> None:
    dns = InMemoryDns({"_dmarc.example.com": {"TXT": ["v=DMARC1; p=none; rua=mailto:agg@reports.test"]}})
    verdict = await dmarc_readiness("example.com", report_addresses=["d@example.com"], resolver=dns)
    assert verdict.reason is DmarcReason.REPORT_ADDRESS_MISSING  # the first problem found decides the reason
    assert "does not send aggregate reports to mailto:d@example.com" in verdict.message
    assert "reports.test has not agreed to receive its reports" in verdict.message  # the second is named too
    assert 'must publish a TXT record at example.com._report._dmarc.reports.test: "v=DMARC1"' in verdict.message
    external = [a for a in verdict.report_authorizations if a.external]
    assert [(a.destination, a.authorized) for a in external] == [("reports.test", False)]
    only_external = await dmarc_readiness("example.com", report_addresses=["agg@reports.test"], resolver=dns)
    assert only_external.reason is DmarcReason.REPORT_DESTINATION_NOT_AUTHORIZED
    dns.add("example.com._report._dmarc.reports.test", "TXT", "v=DMARC1")
    ok = await dmarc_readiness("example.com", report_addresses=["agg@reports.test"], resolver=dns)
    assert ok.reason is DmarcReason.READY
    assert [(a.destination, a.authorized) for a in ok.report_authorizations] == [("reports.test", True)]


async def test_walk_failure_is_unknown() -> None:
    dns = InMemoryDns().fail("_dmarc.example.com", "TXT", "servfail")
    verdict = await dmarc_readiness("mail.example.com", resolver=dns)
    assert verdict.status == "Unknown"
    assert verdict.reason is DmarcReason.DNS_SERVER_FAILURE


@pytest.mark.parametrize(
    ("minimum", "reason"), [("none", "Ready"), ("quarantine", "Ready"), ("reject", "PolicyTooWeak")]
)
async def test_minimum_policy_comparison(minimum: str, reason: str) -> None:
    dns = InMemoryDns({"_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine"]}})
    verdict = await dmarc_readiness("example.com", minimum_policy=minimum, resolver=dns)
    assert verdict.reason.value == reason


async def test_destination_external_only_by_the_public_suffix_list_still_needs_consent() -> None:
    # A registry that published a record without psd=y makes co.uk everyone's organizational domain by the
    # tree walk; RFC 7489 receivers (public suffix list) still see two organizations and ask for consent.
    dns = InMemoryDns(
        {
            "_dmarc.example.co.uk": {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@other.co.uk"]},
            "_dmarc.co.uk": {"TXT": ["v=DMARC1; p=none"]},
        }
    )
    verdict = await dmarc_readiness("example.co.uk", resolver=dns)
    assert verdict.organizational_domain == "co.uk"
    assert verdict.reason is DmarcReason.REPORT_DESTINATION_NOT_AUTHORIZED
    (auth,) = verdict.report_authorizations
    assert auth.why_external == "other.co.uk is not example.co.uk by the public suffix list"
    assert auth.name == "example.co.uk._report._dmarc.other.co.uk"


async def test_destination_external_only_by_the_tree_walk_still_needs_consent() -> None:
    # psd=n makes dept.example.com an organization of its own; the public suffix list sees example.com for both.
    dns = InMemoryDns(
        {
            "_dmarc.dept.example.com": {"TXT": ["v=DMARC1; p=reject; psd=n; rua=mailto:d@example.com"]},
            "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject"]},
        }
    )
    verdict = await dmarc_readiness("dept.example.com", resolver=dns)
    assert verdict.reason is DmarcReason.REPORT_DESTINATION_NOT_AUTHORIZED
    (auth,) = verdict.report_authorizations
    assert auth.why_external == "example.com is not dept.example.com by RFC 9989's tree walk"
    dns.add("dept.example.com._report._dmarc.example.com", "TXT", "v=DMARC1")
    assert (await dmarc_readiness("dept.example.com", resolver=dns)).reason is DmarcReason.READY
