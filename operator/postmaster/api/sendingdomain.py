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


class DKIMManagement(StrEnum):
    OPERATOR = "operator"
    PROVIDER = "provider"


class DKIMSpec(Model):
    """DKIM keys: generated and rotated by the operator, or managed by the provider (CNAME selectors)."""

    managed_by: DKIMManagement | None = Field(
        default=None,
        description=(
            "operator: keys generated into Secret <name>-dkim and rotated; provider: the provider publishes "
            "them (Microsoft 365 selector1/selector2, SendGrid s1/s2, SES Easy DKIM CNAMEs). Default from the preset."
        ),
    )
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
    grace_period: Duration = Field(
        default="7d", description="How long a replaced key stays published after rotation. Default: 7d."
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


HostPort = Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+(:[0-9]{1,5})?$", max_length=260)]


class DNSCheckSpec(Model):
    """Which DNS servers the checks ask."""

    nameservers: list[HostPort] = Field(
        default_factory=list,
        max_length=8,
        description="Ask these servers (host or host:port) instead of the operator's resolver.",
    )
    authoritative: bool = Field(
        default=False,
        description="Ask the domain's own authoritative servers, found through its NS records (no cache in between).",
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
    dns: DNSCheckSpec = Field(default_factory=DNSCheckSpec, description="Which DNS servers the checks ask.")
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


class DKIMStatus(StatusModel):
    """Where DKIM keys and their rotation stand."""

    managed_by: str | None = None
    secret: str | None = Field(default=None, description="The Secret holding operator-generated private keys.")
    active_selector: str | None = Field(default=None, description="The selector to sign with now.")
    pending_selector: str | None = Field(default=None, description="The next key: published, not signing yet.")
    retiring_selectors: list[str] = Field(default_factory=list, description="Replaced keys still published.")
    selectors: list[str] = Field(default_factory=list, description="Every selector checked.")
    waiting: str | None = Field(default=None, description="Why rotation waits, and what to publish.")
    summary: str | None = None


class SendingDomainStatus(CommonStatus):
    """Observed state of a SendingDomain.

    Conditions: `Ready`, `ProviderResolved`, `SPFReady`, `DKIMReady`, `DMARCReady`, `Reconciling`, `Stalled`.
    """

    provider: str | None = Field(default=None, description="The resolved MailProvider.")
    records: list[DNSRecord] = Field(default_factory=list, description="Every record the domain needs.")
    dkim: DKIMStatus | None = Field(default=None, description="DKIM keys and rotation.")
    last_check_time: str | None = Field(
        default=None,
        description=(
            "When the DNS check that produced what this status says ran. Later checks that find the same are "
            "not written (an idle cluster costs no writes)."
        ),
    )
    dns_endpoint: str | None = Field(default=None, description="The external-dns DNSEndpoint carrying the records.")
