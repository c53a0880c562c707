"""API models: what they accept, what they refuse, and that the catalog and the enum agree."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from postmaster.api.common import parse_duration
from postmaster.api.mailprovider import MailProviderSpec, TLSMode
from postmaster.api.restrictionpolicy import RestrictionPolicySpec
from postmaster.api.sendingdomain import SendingDomainSpec
from postmaster.providers.catalog import Preset, load_catalog


def provider(**spec: object) -> MailProviderSpec:
    return MailProviderSpec.model_validate({"from": {"address": "noreply@example.com"}, **spec})


def test_catalog_covers_every_preset_and_nothing_else() -> None:
    assert set(load_catalog()) == set(Preset)


def test_catalog_facts_from_the_seeds() -> None:
    catalog = load_catalog()
    assert catalog[Preset.OFFICE365].rate_limit is not None
    assert (catalog[Preset.OFFICE365].rate_limit.messages, catalog[Preset.OFFICE365].rate_limit.per) == (30, "1m")
    assert catalog[Preset.GMAIL].daily_limit == 500
    assert catalog[Preset.GOOGLE_WORKSPACE].daily_limit == 2000
    assert catalog[Preset.SENDGRID].fixed_username == "apikey"
    assert catalog[Preset.SES].needs_region
    assert catalog[Preset.MAILTRAP].testing_only
    assert "App Password" in catalog[Preset.GMAIL].auth_hint


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host", "http://smtp.example.com/"),
        ("host", "smtp.example.com/"),
        ("host", "smtp.example.com:587"),
        ("host", "smtp example.com"),
        ("port", 0),
        ("port", 70000),
        ("tls", "ssl"),
        ("preset", "hotmail"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        provider(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("host", ["smtp.gmail.com", "smtp.gmail.com.", "192.0.2.1", "2001:db8::25", "mail"])
def test_good_hosts_pass(host: str) -> None:
    assert provider(host=host).host == host


def test_from_is_the_wire_name_and_display_name_is_single_line() -> None:
    spec = provider(**{"from": {"address": "a@example.com", "displayName": "Alerts"}})
    assert spec.sender.display_name == "Alerts"
    with pytest.raises(ValidationError):
        provider(**{"from": {"address": "a@example.com", "displayName": "x\r\nBcc: victim@example.com"}})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        provider(hostname="smtp.example.com")


def test_tls_enum_values() -> None:
    assert provider(tls="implicit").tls is TLSMode.IMPLICIT


def test_oauth2_needs_exactly_one_token_source() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        provider(auth={"method": "xoauth2", "oauth2": {}})


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("10m", 600), ("1h30m", 5400), ("180d", 180 * 86400)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_parse_duration_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration("ten minutes")


def test_restriction_policy_patterns() -> None:
    spec = RestrictionPolicySpec.model_validate(
        {
            "providerRef": {"name": "gmail"},
            "localDomains": ["example.com"],
            "send": {"mode": "LocalDomainAndSubdomains", "exceptions": ["*@partner.example", "ops?@example.org"]},
        }
    )
    assert spec.send.exceptions == ["*@partner.example", "ops?@example.org"]
    with pytest.raises(ValidationError):
        RestrictionPolicySpec.model_validate(
            {"providerRef": {"name": "gmail"}, "localDomains": ["example.com"], "send": {"exceptions": ["a b"]}}
        )
    with pytest.raises(ValidationError):
        RestrictionPolicySpec.model_validate({"providerRef": {"name": "gmail"}, "localDomains": []})


def test_sending_domain_defaults() -> None:
    spec = SendingDomainSpec.model_validate({"domain": "example.com", "providerRef": {"name": "gmail"}})
    assert spec.spf.all.value == "~all"
    assert spec.dmarc.minimum_policy.value == "none"
    with pytest.raises(ValidationError):
        SendingDomainSpec.model_validate({"domain": "example", "providerRef": {"name": "gmail"}})
