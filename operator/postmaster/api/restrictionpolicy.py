"""RestrictionPolicy: who may send to whom through a provider's relay."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from postmaster.api.common import (
    SINGLE_LINE_PATTERN,
    CommonStatus,
    DomainName,
    LocalObjectReference,
    Model,
)

# An exception pattern: an address or a domain with `*` (any run of characters) and `?` (exactly one).
# Without `@` it matches the domain part; with `@` the whole address.
AddressPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+$", max_length=320)]


class RestrictionMode(StrEnum):
    """Which domains are allowed before exceptions apply."""

    ALLOW_ALL = "AllowAll"
    LOCAL_DOMAIN = "LocalDomain"
    LOCAL_DOMAIN_AND_SUBDOMAINS = "LocalDomainAndSubdomains"
    DENY_ALL = "DenyAll"


class Restriction(Model):
    """A mode and its exceptions. Exceptions invert the mode: refused under AllowAll, allowed otherwise."""

    mode: RestrictionMode = Field(
        default=RestrictionMode.ALLOW_ALL,
        description="AllowAll, LocalDomain, LocalDomainAndSubdomains or DenyAll. Default: AllowAll.",
    )
    exceptions: list[AddressPattern] = Field(
        default_factory=list,
        max_length=1000,
        description="Patterns with * (any characters) and ? (one character), e.g. *@partner.example or *.example.org.",
    )


class RestrictionPolicySpec(Model):
    """The desired state of a RestrictionPolicy, enforced by the relay at RCPT TO / MAIL FROM."""

    provider_ref: LocalObjectReference = Field(description="The MailProvider whose relay enforces this policy.")
    local_domains: list[DomainName] = Field(
        min_length=1, max_length=100, description="The domains that count as local, e.g. example.com."
    )
    send: Restriction = Field(
        default_factory=Restriction, description="Which recipients workloads may send to (checked at RCPT TO)."
    )
    receive: Restriction = Field(
        default_factory=Restriction,
        description="Which envelope senders the relay accepts (refused with 550 5.7.1 at RCPT TO, as Postfix does).",
    )
    suppressed: list[AddressPattern] = Field(
        default_factory=list,
        max_length=10000,
        description="Recipients never sent to (patterns as in exceptions), e.g. addresses that bounced.",
    )
    reject_message: str = Field(
        default="Permission denied",
        max_length=200,
        pattern=SINGLE_LINE_PATTERN,
        description="Text of the permanent error a refused address gets. Default: Permission denied.",
    )


class RestrictionPolicyStatus(CommonStatus):
    """Observed state of a RestrictionPolicy.

    Conditions: `Ready`, `Rendered` (compiled into the provider's relay ConfigMap), `Reconciling`, `Stalled`.
    """

    relay_config_map: str | None = Field(default=None, description="The relay ConfigMap carrying this policy.")
