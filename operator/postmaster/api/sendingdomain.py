"""SendingDomain: a domain that sends through a MailProvider, and the DNS records it needs."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from postmaster.api.common import (
    CommonStatus,
    DomainName,
    Duration,
    LocalObjectReference,
    Model,
    StatusModel,
)

IPv4Network = Annotated[str, Field(pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$")]
IPv6Network = Annotated[str, Field(pattern=r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?$")]
DKIMSelector = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
MailtoURI = Annotated[str, Field(pattern=r"^mailto:[^\s,;!]+@[^\s,;!]+$", max_length=320)]


class AllQualifier(StrEnum):
    """How the SPF record ends: -all (fail) or ~all (softfail). +all and ?all authorise everyone."""

    FAIL = "-all"
    SOFTFAIL = "~all"


class SPFSpec(Model):
    """What the domain's SPF record must authorise besides the provider."""

    includes: list[DomainName] = Field(
        default_factory=list, max_length=8, description="Extra include: domains (other senders of this domain)."
    )
    ip4: list[IPv4Network] = Field(
        default_factory=list, description="Extra IPv4 addresses or networks, e.g. 192.0.2.10 or 192.0.2.0/24."
    )
    ip6: list[IPv6Network] = Field(
        default_factory=list, description="Extra IPv6 addresses or networks, e.g. 2001:db8::/32."
    )
    all: AllQualifier = Field(
        default=AllQualifier.SOFTFAIL, description="How the record ends: ~all or -all. Default: ~all."
    )


class DKIMKeyType(StrEnum):
    RSA = "rsa"
    ED25519 = "ed25519"


class DKIMSpec(Model):
    """DKIM keys: generated and rotated by the operator, or managed by the provider (CNAME selectors)."""

    selectors: list[DKIMSelector] = Field(
        default_factory=list,
        description=(
            "Selectors to check. Default: the preset's provider-managed selectors, else one the operator generates."
        ),
    )
    key_type: DKIMKeyType = Field(default=DKIMKeyType.RSA, description="rsa (2048 bits) or ed25519. Default: rsa.")
    rotate_every: Duration | None = Field(
        default=None, description="Rotate operator-generated keys this often, e.g. 180d. Default: never."
    )


class DMARCPolicy(StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class DMARCSpec(Model):
    """The DMARC policy the domain must publish at least."""

    minimum_policy: DMARCPolicy = Field(
        default=DMARCPolicy.NONE,
        description="Weakest acceptable p= (none is the Google/Yahoo bulk-sender minimum). Default: none.",
    )
    report_addresses: list[MailtoURI] = Field(
        default_factory=list, description="Aggregate report destinations (rua), e.g. mailto:dmarc@example.com."
    )


class PublishSpec(Model):
    """How the records reach DNS."""

    external_dns: bool = Field(
        default=False, alias="externalDNS", description="Own an external-dns DNSEndpoint carrying the records."
    )


class SendingDomainSpec(Model):
    """The desired state of a SendingDomain."""

    domain: DomainName = Field(description="The domain in the From address, e.g. example.com.")
    provider_ref: LocalObjectReference = Field(description="The MailProvider this domain sends through.")
    spf: SPFSpec = Field(default_factory=SPFSpec, description="SPF record requirements.")
    dkim: DKIMSpec = Field(default_factory=DKIMSpec, description="DKIM keys and selectors.")
    dmarc: DMARCSpec = Field(default_factory=DMARCSpec, description="DMARC policy requirements.")
    publish: PublishSpec = Field(default_factory=PublishSpec, description="How the records get published.")
    check_interval: Duration = Field(default="5m", description="Time between DNS checks. Default: 5m.")


class DNSRecord(StatusModel):
    """One DNS record the domain needs, ready to copy into a DNS provider."""

    name: str = Field(description="Fully qualified owner name.")
    type: str = Field(description="Record type: TXT or CNAME.")
    value: str = Field(description="The value to publish.")
    purpose: str = Field(description="What the record is for.")
    published: bool | None = Field(
        default=None, description="Whether the world serves it now; empty until DNS has been checked."
    )


class SendingDomainStatus(CommonStatus):
    """Observed state of a SendingDomain.

    Conditions: `Ready`, `ProviderResolved`, `SPFReady`, `DKIMReady`, `DMARCReady`, `Reconciling`, `Stalled`.
    """

    provider: str | None = Field(default=None, description="The resolved MailProvider.")
    records: list[DNSRecord] = Field(default_factory=list, description="Every record the domain needs.")
