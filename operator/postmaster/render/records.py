"""The DNS records a SendingDomain needs, ready to copy into a DNS provider (status.records)."""

from __future__ import annotations

from dataclasses import dataclass

from postmaster.api.sendingdomain import SendingDomainSpec
from postmaster.resolution import Endpoint


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    purpose: str

    def as_status(self, published: bool | None = None) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "value": self.value, "purpose": self.purpose}
        if published is not None:
            out["published"] = published
        return out


def spf_terms(spec: SendingDomainSpec, endpoint: Endpoint) -> list[str]:
    """The mechanisms that authorise the provider and the spec's extra senders, in a stable order."""
    terms: list[str] = []
    if endpoint.entry.spf_include:
        terms.append(f"include:{endpoint.entry.spf_include}")
    elif not spec.spf.includes and not spec.spf.ip4 and not spec.spf.ip6:
        # A custom server: authorise the addresses its host name resolves to.
        terms.append(f"a:{endpoint.host}")
    terms += [f"include:{d}" for d in spec.spf.includes if f"include:{d}" not in terms]
    terms += [f"ip4:{a}" for a in spec.spf.ip4]
    terms += [f"ip6:{a}" for a in spec.spf.ip6]
    return terms


def spf_record(spec: SendingDomainSpec, endpoint: Endpoint) -> Record:
    value = " ".join(["v=spf1", *spf_terms(spec, endpoint), spec.spf.all.value])
    return Record(
        name=spec.domain,
        type="TXT",
        value=value,
        purpose=(
            f"SPF: authorises {endpoint.entry.title} to send for {spec.domain}; merge into any existing "
            "v=spf1 record (a domain must have exactly one)"
        ),
    )


def dmarc_record(spec: SendingDomainSpec) -> Record:
    tags = ["v=DMARC1", f"p={spec.dmarc.minimum_policy.value}"]
    if spec.dmarc.report_addresses:
        tags.append("rua=" + ",".join(spec.dmarc.report_addresses))
    return Record(
        name=f"_dmarc.{spec.domain}",
        type="TXT",
        value="; ".join(tags),
        purpose=f"DMARC: policy p={spec.dmarc.minimum_policy.value} or stricter for {spec.domain}",
    )


def domain_records(spec: SendingDomainSpec, endpoint: Endpoint) -> list[Record]:
    return [spf_record(spec, endpoint), dmarc_record(spec)]
