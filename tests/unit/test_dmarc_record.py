"""DMARC records: tag parsing (RFC 9989 section 4.7), obsolete tags, effective policy, the proposed record."""

from __future__ import annotations

import pytest

from postmaster.checks.dmarc import (
    DmarcPolicy,
    effective_policy,
    is_dmarc_record,
    near_miss_reason,
    parse_record,
    propose_record,
)


def test_full_record_parses_with_defaults() -> None:
    record = parse_record(
        "v=DMARC1;p=quarantine; sp = reject ;np=reject; adkim=s; aspf=r; rua=mailto:agg@example.com, "
        "mailto:x@reports.test; ruf=mailto:f@example.com; fo=1:d; psd=n; t=n"
    )
    assert record.p is DmarcPolicy.QUARANTINE
    assert (record.sp, record.np) == (DmarcPolicy.REJECT, DmarcPolicy.REJECT)
    assert (record.adkim, record.aspf, record.psd, record.t, record.fo) == ("s", "r", "n", "n", "1:d")
    assert record.rua == ("mailto:agg@example.com", "mailto:x@reports.test")
    assert record.ruf == ("mailto:f@example.com",)
    assert record.problems == ()
    assert record.warnings == ()
    minimal = parse_record("v=DMARC1; p=none")
    assert (minimal.adkim, minimal.aspf, minimal.psd, minimal.t, minimal.rua) == ("r", "r", "u", "n", ())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v=DMARC1; p=none", True),
        ("v=DMARC1", True),
        ("V = DMARC1 ; p=reject", True),
        ("v=DMARC1;", True),
        ("v=dmarc1; p=none", False),
        ("p=none; v=DMARC1", False),
        ("v=DMARC1 p=none", False),
        (" v=DMARC1; p=none", False),
        ("v=DMARC10; p=none", False),
        ("v=spf1 -all", False),
    ],
)
def test_version_must_come_first_exactly(text: str, expected: bool) -> None:
    assert is_dmarc_record(text) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("v=dmarc1; p=none", "case-sensitive"),
        ("p=none; v=DMARC1", "must be the first tag"),
        ("v=DMARC1 p=none", "followed by ';'"),
        (" v=DMARC1; p=none", "starts with whitespace"),
        ("dmarc1 please", "must start with v=DMARC1"),
    ],
)
def test_near_misses_are_explained(text: str, fragment: str) -> None:
    assert fragment in near_miss_reason(text)


@pytest.mark.parametrize(
    ("text", "tag", "fragment"),
    [
        ("v=DMARC1; p=block", "p", "'block' is not none, quarantine or reject"),
        ("v=DMARC1; p=none; sp=maybe", "sp", "receivers ignore it"),
        ("v=DMARC1; p=none; np=x", "np", "not none, quarantine or reject"),
        ("v=DMARC1; p=none; adkim=strict", "adkim", "not r (relaxed) or s (strict)"),
        ("v=DMARC1; p=none; aspf=", "aspf", "empty value"),
        ("v=DMARC1; p=none; psd=yes", "psd", "not y, n or u"),
        ("v=DMARC1; p=none; t=true", "t", "not y or n"),
        ("v=DMARC1; p=none; fo=0:1", "fo", "exclude each other"),
        ("v=DMARC1; p=none; fo=2", "fo", "colon-separated list"),
        ("v=DMARC1; p=none; rua=dmarc@example.com", "rua", "not a URI"),
        ("v=DMARC1; p=none; rua=mailto:nobody", "rua", "valid address"),
        ("v=DMARC1; p=none; rua=mailto:a@example.com!big", "rua", "written %21"),
        ("v=DMARC1; p=none; ruf=mailto:a@example.com,,mailto:b@example.com", "ruf", "empty entry"),
        ("v=DMARC1; p=none; p=reject", "p", "more than once"),
        ("v=DMARC1; p=none; pct=150", "pct", "0 to 100"),
        ("v=DMARC1; p=none; ri=daily", "ri", "number of seconds"),
        ("v=DMARC1; rua=mailto:a@example.com", "p", "is missing"),
        ("v=DMARC1; p=none; broken", None, "not a tag=value pair"),
    ],
)
def test_syntax_errors_are_named(text: str, tag: str | None, fragment: str) -> None:
    record = parse_record(text)
    assert [p.tag for p in record.problems] == [tag]
    assert fragment in record.problems[0].detail


def test_invalid_values_fall_back_to_defaults() -> None:
    record = parse_record("v=DMARC1; p=reject; adkim=x; sp=bogus; rua=nope, mailto:ok@example.com")
    assert record.adkim == "r"
    assert record.sp is None
    assert record.rua == ("mailto:ok@example.com",)
    assert record.p is DmarcPolicy.REJECT


def test_policy_values_are_case_insensitive_and_uris_keep_size_suffix_warning() -> None:
    record = parse_record("v=DMARC1; P=Reject; RUA=MAILTO:Agg@Example.com!10m")
    assert record.p is DmarcPolicy.REJECT
    assert record.rua == ("MAILTO:Agg@Example.com",)
    assert any("!10m" in w and "obsolete" in w for w in record.warnings)


def test_obsolete_and_unknown_tags_warn() -> None:
    record = parse_record("v=DMARC1; p=reject; pct=25; rf=afrf; ri=86400; foo=bar; fo=1; rua=https://r.example.com/")
    assert record.problems == ()
    assert record.pct == 25
    text = " | ".join(record.warnings)
    assert "pct=25: RFC 7489 receivers apply the policy to only 25%" in text
    assert "rf= is obsolete" in text
    assert "ri= is obsolete" in text
    assert "unknown tag foo=" in text
    assert "fo= has no effect without ruf=" in text
    assert "only required to support mailto:" in text
    assert "pct=100 is obsolete" in parse_record("v=DMARC1; p=none; pct=100").warnings[0]


def test_effective_policy_for_the_domain_its_subdomains_and_testing() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=quarantine; np=none")
    assert effective_policy(record, inherited=False) is DmarcPolicy.REJECT
    assert effective_policy(record, inherited=True) is DmarcPolicy.QUARANTINE
    assert effective_policy(record, inherited=True, exists=False) is DmarcPolicy.NONE
    only_p = parse_record("v=DMARC1; p=quarantine")
    assert effective_policy(only_p, inherited=True, exists=False) is DmarcPolicy.QUARANTINE
    sp_only = parse_record("v=DMARC1; p=none; sp=reject")
    assert effective_policy(sp_only, inherited=True, exists=False) is DmarcPolicy.REJECT  # np absent: sp
    testing = parse_record("v=DMARC1; p=reject; t=y")
    assert effective_policy(testing, inherited=False) is DmarcPolicy.QUARANTINE
    assert effective_policy(parse_record("v=DMARC1; p=quarantine; t=y"), inherited=False) is DmarcPolicy.NONE
    no_p_with_rua = parse_record("v=DMARC1; p=bogus; rua=mailto:a@example.com")
    assert effective_policy(no_p_with_rua, inherited=False) is DmarcPolicy.NONE
    assert effective_policy(parse_record("v=DMARC1; p=bogus"), inherited=False) is None


def test_proposed_record_raises_policy_keeps_tags_and_adds_addresses() -> None:
    assert (
        propose_record("example.com", minimum_policy="quarantine", report_addresses=["dmarc@example.com"])
        == "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"
    )
    current = parse_record(
        "v=DMARC1; p=none; sp=reject; adkim=s; rua=mailto:a@example.com; ruf=mailto:f@example.com; fo=1; pct=50; t=y"
    )
    assert (
        propose_record(
            "example.com",
            minimum_policy="quarantine",
            report_addresses=["mailto:A@example.com", "b@example.com"],
            current=current,
        )
        == "v=DMARC1; p=quarantine; sp=reject; adkim=s; rua=mailto:a@example.com,mailto:b@example.com; "
        "ruf=mailto:f@example.com; fo=1"
    )
    stronger = parse_record("v=DMARC1; p=reject")
    assert propose_record("example.com", minimum_policy="none", current=stronger) == "v=DMARC1; p=reject"


def test_proposed_record_for_a_subdomain_covered_by_its_parent() -> None:
    parent = parse_record("v=DMARC1; p=reject; sp=none; aspf=s; rua=mailto:agg@example.com; ruf=mailto:f@example.com")
    assert (
        propose_record("mail.example.com", minimum_policy="quarantine", current=parent, inherited=True)
        == "v=DMARC1; p=quarantine; aspf=s; rua=mailto:agg@example.com"
    )


def test_parse_record_refuses_non_dmarc_text() -> None:
    with pytest.raises(ValueError, match="must start with v=DMARC1"):
        parse_record("p=none")
