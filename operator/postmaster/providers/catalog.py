"""The preset catalog: typed access to providers/catalog.yaml."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
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
    oauth2_scope: str | None = None
    testing_only: bool = False
    docs: str | None = None

    @property
    def needs_region(self) -> bool:
        return self.host is not None and "{region}" in self.host


@cache
def load_catalog() -> dict[Preset, PresetEntry]:
    text = resources.files("postmaster.providers").joinpath("catalog.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return {Preset(name): PresetEntry.model_validate(entry) for name, entry in raw.items()}


def preset_entry(preset: Preset | str) -> PresetEntry:
    return load_catalog()[Preset(preset)]
