"""DMARC over real DNS: records at the apex, only at the organizational domain, at a PSD; report authorisation.

nsd answers REFUSED for names outside its zones, so these tests serve whole top-level domains of their
own (``pmdmarc``, ``pmpsd``): the tree walk climbs to the top-level domain and must get real answers there.
"""

from __future__ import annotations

import pytest

from postmaster.checks.dmarc import DmarcPolicy, DmarcReason, dmarc_readiness
from postmaster.checks.dns import DnsCache, DnsResolver
from tests.fixtures.dns import NsdServer, SilentServer


@pytest.fixture(scope="module")
def published(nsd: NsdServer) -> NsdServer:
    nsd.zones_bulk(
        {
            "pmdmarc": "",  # the registry: no DMARC record of its own
            "apex.pmdmarc": '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@apex.pmdmarc"',
            "org.pmdmarc": "\n".join(
                [
                    '_dmarc TXT "v=DMARC1; p=reject; sp=quarantine; np=reject"',
                    "mail A 192.0.2.1",
                    "deep.f.e.d.c.b.a A 192.0.2.2",
                ]
            ),
            "big.pmdmarc": "\n".join(
                [
                    '_dmarc TXT "v=DMARC1; p=reject"',
                    '_dmarc.dept TXT "v=DMARC1; p=quarantine; psd=n"',
                    "mail.dept A 192.0.2.3",
                ]
            ),
            "split.pmdmarc": '_dmarc TXT "v=DMARC1; p=rej" "ect; rua=mailto:d@split.pmdmarc"',
            "twice.pmdmarc": '_dmarc TXT "v=DMARC1; p=none"\n_dmarc TXT "v=DMARC1; p=reject"',
            "bad.pmdmarc": '_dmarc TXT "v=DMARC1; p=rejected; rua=mailto:d@bad.pmdmarc"',
            "vendor.pmdmarc": "",  # consents to nothing yet
            "bigvendor.pmdmarc": '*._report._dmarc TXT "v=DMARC1"',  # consents for everyone
            "rep.pmdmarc": '_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:agg@vendor.pmdmarc"',
            "rep2.pmdmarc": '_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:agg@bigvendor.pmdmarc"',
            # A public suffix operator publishing psd=y; shop.pmpsd publishes nothing.
            "pmpsd": '_dmarc TXT "v=DMARC1; p=reject; psd=y"',
            "shop.pmpsd": "www A 192.0.2.4",
        }
    )
    return nsd


def resolver(server: NsdServer | SilentServer, *, timeout: float = 1.0) -> DnsResolver:
    return DnsResolver([server.nameserver], cache=DnsCache(), timeout=timeout, lifetime=3 * timeout, attempts=1)


async def test_record_at_the_apex(published: NsdServer) -> None:
    verdict = await dmarc_readiness(
        "apex.pmdmarc",
        minimum_policy="reject",
        report_addresses=["dmarc@apex.pmdmarc"],
        resolver=resolver(published),
    )
    assert verdict.reason is DmarcReason.READY
    assert verdict.status == "True"
    assert verdict.record_name == "_dmarc.apex.pmdmarc"
    assert verdict.walked == ("_dmarc.apex.pmdmarc", "_dmarc.pmdmarc")
    assert verdict.organizational_domain == verdict.psl_organizational_domain == "apex.pmdmarc"
    assert "Alignment: DKIM relaxed (adkim=r), SPF relaxed (aspf=r)." in verdict.message


async def test_record_only_at_the_organizational_domain(published: NsdServer) -> None:
    dns = resolver(published)
    mail = await dmarc_readiness("mail.org.pmdmarc", minimum_policy="quarantine", resolver=dns)
    assert mail.reason is DmarcReason.READY
    assert mail.record_name == "_dmarc.org.pmdmarc"
    assert mail.effective_policy is DmarcPolicy.QUARANTINE  # sp=, not p=
    assert "(inherited from org.pmdmarc)" in mail.message
    strict = await dmarc_readiness("mail.org.pmdmarc", minimum_policy="reject", resolver=dns)
    assert strict.reason is DmarcReason.POLICY_TOO_WEAK
    assert "receivers apply sp= of _dmarc.org.pmdmarc (sp=quarantine)" in strict.message
    assert strict.suggested_name == "_dmarc.mail.org.pmdmarc"
    assert strict.suggested_record == "v=DMARC1; p=reject"
    # A name that does not exist gets np=.
    ghost = await dmarc_readiness("ghost.org.pmdmarc", minimum_policy="reject", resolver=dns)
    assert (ghost.reason, ghost.effective_policy) == (DmarcReason.READY, DmarcPolicy.REJECT)


async def test_deep_names_take_the_shortcut(published: NsdServer) -> None:
    verdict = await dmarc_readiness(
        "deep.f.e.d.c.b.a.org.pmdmarc", minimum_policy="quarantine", resolver=resolver(published)
    )
    assert verdict.walked == (
        "_dmarc.deep.f.e.d.c.b.a.org.pmdmarc",
        "_dmarc.e.d.c.b.a.org.pmdmarc",
        "_dmarc.d.c.b.a.org.pmdmarc",
        "_dmarc.c.b.a.org.pmdmarc",
        "_dmarc.b.a.org.pmdmarc",
        "_dmarc.a.org.pmdmarc",
        "_dmarc.org.pmdmarc",
        "_dmarc.pmdmarc",
    )
    assert verdict.reason is DmarcReason.READY
    assert verdict.organizational_domain == "org.pmdmarc"


async def test_psd_n_and_the_public_suffix_list_disagree(published: NsdServer) -> None:
    verdict = await dmarc_readiness("mail.dept.big.pmdmarc", minimum_policy="quarantine", resolver=resolver(published))
    assert verdict.reason is DmarcReason.READY
    assert verdict.walked == ("_dmarc.mail.dept.big.pmdmarc", "_dmarc.dept.big.pmdmarc")  # psd=n stops the walk
    assert verdict.organizational_domain == "dept.big.pmdmarc"
    assert verdict.psl_organizational_domain == "big.pmdmarc"
    assert (
        "Organizational domain: dept.big.pmdmarc by RFC 9989's DNS tree walk, big.pmdmarc by the public suffix list"
        in verdict.message
    )


async def test_public_suffix_domain_policy_applies_without_an_organizational_record(published: NsdServer) -> None:
    verdict = await dmarc_readiness("shop.pmpsd", minimum_policy="reject", resolver=resolver(published))
    assert verdict.reason is DmarcReason.READY
    assert verdict.record_name == "_dmarc.pmpsd"
    assert verdict.organizational_domain == "shop.pmpsd"  # one label below the psd=y record
    assert verdict.effective_policy is DmarcPolicy.REJECT


async def test_multi_string_record_is_joined(published: NsdServer) -> None:
    verdict = await dmarc_readiness("split.pmdmarc", minimum_policy="reject", resolver=resolver(published))
    assert verdict.reason is DmarcReason.READY
    assert verdict.record == "v=DMARC1; p=reject; rua=mailto:d@split.pmdmarc"


async def test_two_records_and_a_syntax_error(published: NsdServer) -> None:
    dns = resolver(published)
    twice = await dmarc_readiness("twice.pmdmarc", resolver=dns)
    assert twice.reason is DmarcReason.MULTIPLE_RECORDS
    assert "receivers discard them all" in twice.message
    bad = await dmarc_readiness("bad.pmdmarc", minimum_policy="quarantine", resolver=dns)
    assert bad.reason is DmarcReason.SYNTAX_ERROR
    assert "p=: 'rejected' is not none, quarantine or reject" in bad.message
    assert "receivers apply none, below the required quarantine" in bad.message  # a valid rua= makes it p=none
    assert bad.suggested_record == "v=DMARC1; p=quarantine; rua=mailto:d@bad.pmdmarc"


async def test_report_authorisation_absent_then_published(published: NsdServer) -> None:
    verdict = await dmarc_readiness("rep.pmdmarc", minimum_policy="quarantine", resolver=resolver(published))
    assert verdict.reason is DmarcReason.REPORT_DESTINATION_NOT_AUTHORIZED
    assert verdict.status == "False"
    assert (
        'The owner of vendor.pmdmarc must publish a TXT record at rep.pmdmarc._report._dmarc.vendor.pmdmarc: "v=DMARC1"'
        in (verdict.message)
    )
    assert verdict.suggested_record is None  # nothing to change in rep.pmdmarc's own record
    (auth,) = verdict.report_authorizations
    assert (auth.external, auth.authorized, auth.name) == (True, False, "rep.pmdmarc._report._dmarc.vendor.pmdmarc")

    published.zone("vendor.pmdmarc", 'rep.pmdmarc._report._dmarc TXT "v=DMARC1"')
    again = await dmarc_readiness("rep.pmdmarc", minimum_policy="quarantine", resolver=resolver(published))
    assert again.reason is DmarcReason.READY
    assert again.report_authorizations[0].authorized is True


async def test_wildcard_report_authorisation(published: NsdServer) -> None:
    verdict = await dmarc_readiness("rep2.pmdmarc", minimum_policy="quarantine", resolver=resolver(published))
    assert verdict.reason is DmarcReason.READY
    assert verdict.report_authorizations[0].authorized is True


async def test_missing_everywhere_and_silent_server(published: NsdServer, silent_server: SilentServer) -> None:
    missing = await dmarc_readiness(
        "nothing.apex.pmdmarc",
        minimum_policy="none",
        report_addresses=["dmarc@apex.pmdmarc"],
        resolver=resolver(published),
    )
    # apex.pmdmarc's own record covers its subdomains: only a name outside any record is RecordMissing.
    assert missing.reason is DmarcReason.READY
    orphan = await dmarc_readiness("orphan.pmdmarc", resolver=resolver(published))
    assert orphan.reason is DmarcReason.RECORD_MISSING
    assert "none at _dmarc.orphan.pmdmarc, _dmarc.pmdmarc" in orphan.message
    silent = await dmarc_readiness("apex.pmdmarc", resolver=resolver(silent_server, timeout=0.2))
    assert (silent.status, silent.reason) == ("Unknown", DmarcReason.DNS_TIMEOUT)
