"""The preset catalog: typed access to providers/catalog.yaml."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class Preset(StrEnum):
    """The presets a MailProvider may name. Keep in step with catalog.yaml (a test checks)."""

    GMAIL = "gmail"
    GOOGLE_WORKSPACE = "google-workspace"
    OFFICE365 = "office365"
    YAHOO = "yahoo"
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    MAILGUN_EU = "mailgun-eu"
    SES = "ses"
    POSTMARK = "postmark"
    MAILTRAP = "mailtrap"
    BREVO = "brevo"
    MAILJET = "mailjet"
    CUSTOM = "custom"


DKIM_CNAME_PLACEHOLDERS = frozenset({"selector", "domain", "domainWithDashes"})
"""What a `dkimCnameTarget` template may name in braces; see `PresetEntry.dkim_cname_target_for`."""
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class CatalogRate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    messages: int
    per: str


class PresetEntry(BaseModel):
    """What one preset fills in. See the comment at the top of catalog.yaml for each field."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    title: str
    host: str | None = None
    port: int | None = None
    tls: Literal["starttls", "implicit", "none"] | None = None
    auth_method: Literal["plain", "login", "cram-md5", "xoauth2", "none"] = "plain"
    username: Literal["secret", "sender", "fixed"] = "secret"
    fixed_username: str | None = None
    username_hint: str = ""
    auth_hint: str = ""
    rate_limit: CatalogRate | None = None
    daily_limit: int | None = None
    spf_include: str | None = None
    dkim: Literal["operator", "provider-cname"] = "operator"
    dkim_selectors: list[str] = Field(default_factory=list)
    dkim_cname_target: str | None = None
    oauth2_scope: str | None = None
    testing_only: bool = False
    docs: str | None = None

    @property
    def needs_region(self) -> bool:
        return self.host is not None and "{region}" in self.host

    @field_validator("dkim_cname_target")
    @classmethod
    def _known_placeholders(cls, template: str | None) -> str | None:
        unknown = {name for name in _PLACEHOLDER.findall(template or "") if name not in DKIM_CNAME_PLACEHOLDERS}
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(DKIM_CNAME_PLACEHOLDERS))}"
            )
        return template

    @model_validator(mode="after")
    def _cname_target_only_for_provider_keys(self) -> PresetEntry:
        if self.dkim_cname_target is not None and self.dkim != "provider-cname":
            raise ValueError(
                "dkimCnameTarget is for presets whose DKIM keys the provider manages (dkim: provider-cname)"
            )
        return self

    def dkim_cname_target_for(self, selector: str, domain: str) -> str | None:
        """The CNAME target the provider documents for `selector` of `domain`, from the `dkimCnameTarget` template.

        ``{selector}``, ``{domain}`` and ``{domainWithDashes}`` (the domain with its dots turned into dashes) are
        filled in; parts in angle brackets, like ``<tenant>``, stay for people to fill in from the provider's
        console. None when the preset has no template.
        """
        if self.dkim_cname_target is None:
            return None
        values = {"selector": selector, "domain": domain, "domainWithDashes": domain.replace(".", "-")}
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.dkim_cname_target)


@cache
def load_catalog() -> dict[Preset, PresetEntry]:
    text = resources.files("postmaster.providers").joinpath("catalog.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return {Preset(name): PresetEntry.model_validate(entry) for name, entry in raw.items()}


def preset_entry(preset: Preset | str) -> PresetEntry:
    return load_catalog()[Preset(preset)]
