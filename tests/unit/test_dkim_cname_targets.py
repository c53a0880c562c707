"""The CNAME targets shown for provider-managed DKIM selectors come from the catalog, as each provider writes them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from postmaster.checks.dkim import provider_cname_target
from postmaster.providers.catalog import Preset, PresetEntry, load_catalog


@pytest.mark.parametrize(
    ("preset", "selector", "domain", "target"),
    [
        (
            "office365",
            "selector1",
            "mail.example.com",
            "selector1-mail-example-com._domainkey.<tenant>.onmicrosoft.com",
        ),
        ("office365", "selector2", "example.com", "selector2-example-com._domainkey.<tenant>.onmicrosoft.com"),
        ("sendgrid", "s1", "example.com", "s1.domainkey.u<account-id>.wl<id>.sendgrid.net"),
        ("ses", "ab12cd34ef", "example.com", "ab12cd34ef.dkim.amazonses.com"),
    ],
)
def test_provider_targets_fill_selector_and_domain(preset: str, selector: str, domain: str, target: str) -> None:
    assert provider_cname_target(preset, selector, domain) == target


@pytest.mark.parametrize("preset", [None, "gmail", "custom", "no-such-preset"])
def test_no_target_without_a_provider_template(preset: str | None) -> None:
    assert provider_cname_target(preset, "s1", "example.com") is None


def test_only_provider_managed_presets_have_a_template() -> None:
    with_template = {preset for preset, entry in load_catalog().items() if entry.dkim_cname_target is not None}
    assert with_template == {Preset.OFFICE365, Preset.SENDGRID, Preset.SES}
    assert all(load_catalog()[preset].dkim == "provider-cname" for preset in with_template)


def test_a_template_with_an_unknown_placeholder_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown placeholder"):
        PresetEntry.model_validate({"title": "x", "dkim": "provider-cname", "dkimCnameTarget": "{selector}.{tenant}.x"})


def test_a_template_needs_provider_managed_keys() -> None:
    with pytest.raises(ValidationError, match="provider-cname"):
        PresetEntry.model_validate({"title": "x", "dkim": "operator", "dkimCnameTarget": "{selector}.example.net"})
