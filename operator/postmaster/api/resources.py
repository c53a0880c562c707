"""The three kinds: names, models and printer columns. The single source of crds/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from postmaster import GROUP, VERSION
from postmaster.api.common import CommonStatus
from postmaster.api.mailprovider import MailProviderSpec, MailProviderStatus
from postmaster.api.restrictionpolicy import RestrictionPolicySpec, RestrictionPolicyStatus
from postmaster.api.sendingdomain import SendingDomainSpec, SendingDomainStatus


def _condition(type_: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")]'


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


READY_COLUMNS = (
    PrinterColumn("Ready", _condition("Ready") + ".status", description="Whether the object is ready"),
    PrinterColumn("Reason", _condition("Ready") + ".reason", priority=1, description="Why it is (not) ready"),
    PrinterColumn("Message", _condition("Ready") + ".message", priority=1, description="What to do"),
    PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
)


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[CommonStatus]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def group(self) -> str:
        return GROUP

    @property
    def version(self) -> str:
        return VERSION


MAIL_PROVIDER = Resource(
    kind="MailProvider",
    plural="mailproviders",
    short_names=("mp", "mailprovider"),
    spec_model=MailProviderSpec,
    status_model=MailProviderStatus,
    description=(
        "MailProvider is one SMTP service the namespace sends through (Gmail, Microsoft 365, SendGrid, "
        "Mailgun, Amazon SES, Postmark, a custom server). The operator writes Secret <name>-smtp with the "
        "connection details for applications, and ConfigMap and Secret <name>-relay for a Postfix relay."
    ),
    columns=(
        PrinterColumn("Preset", ".spec.preset", description="Provider preset"),
        PrinterColumn("Host", ".status.endpoint.host", description="Resolved SMTP host"),
        PrinterColumn("Port", ".status.endpoint.port", type="integer", description="Resolved SMTP port"),
        PrinterColumn("TLS", ".status.endpoint.tls", description="Resolved TLS mode"),
        *READY_COLUMNS,
    ),
)

SENDING_DOMAIN = Resource(
    kind="SendingDomain",
    plural="sendingdomains",
    short_names=("sd", "sendingdomain"),
    spec_model=SendingDomainSpec,
    status_model=SendingDomainStatus,
    description=(
        "SendingDomain is a domain that sends through a MailProvider. The operator works out the SPF, "
        "DKIM and DMARC records it needs, lists them in status.records, and checks what DNS serves."
    ),
    columns=(
        PrinterColumn("Domain", ".spec.domain", description="The sending domain"),
        PrinterColumn("Provider", ".spec.providerRef.name", description="The MailProvider it sends through"),
        PrinterColumn("SPF", _condition("SPFReady") + ".status", priority=1, description="SPF record ready"),
        PrinterColumn("DKIM", _condition("DKIMReady") + ".status", priority=1, description="DKIM keys ready"),
        PrinterColumn("DMARC", _condition("DMARCReady") + ".status", priority=1, description="DMARC ready"),
        *READY_COLUMNS,
    ),
)

RESTRICTION_POLICY = Resource(
    kind="RestrictionPolicy",
    plural="restrictionpolicies",
    short_names=("rp", "restrictionpolicy"),
    spec_model=RestrictionPolicySpec,
    status_model=RestrictionPolicyStatus,
    description=(
        "RestrictionPolicy says who may send to whom through a MailProvider's relay: all domains, the "
        "local domain, the local domain and its subdomains, or none, with * and ? exception patterns. "
        "A refused recipient gets a permanent error (550 5.7.1) at RCPT TO."
    ),
    columns=(
        PrinterColumn("Provider", ".spec.providerRef.name", description="The MailProvider whose relay enforces it"),
        PrinterColumn("Send", ".spec.send.mode", description="Send restriction mode"),
        PrinterColumn("Receive", ".spec.receive.mode", description="Receive restriction mode"),
        *READY_COLUMNS,
    ),
)

RESOURCES: tuple[Resource, ...] = (MAIL_PROVIDER, SENDING_DOMAIN, RESTRICTION_POLICY)
CATEGORY = "mail"
