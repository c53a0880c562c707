"""One sending domain, all at once: SPF, DKIM and DMARC readiness, and every record it needs.

`check_domain(domain, spf_includes=..., spf_ips=..., selectors=..., minimum_policy=..., report_addresses=...,
resolver=...)` runs the three checks concurrently through one resolver (so one shared cache) and returns a
`DomainReport`:

* `spf` (`spf.SpfVerdict`), `dkim` (`dkim.DkimVerdict`), `dmarc` (`dmarc.DmarcVerdict`): one per condition
  (``SPFReady``, ``DKIMReady``, ``DMARCReady``), each with `reason`, `status` and `message`;
* `records`: every record the domain needs, as `RequiredRecord` (name, type, value, purpose, published),
  ready to copy into a DNS provider: the SPF record (the one to publish, or the current one when it is
  fine), a DKIM TXT record per operator-managed selector (its value split into 255-byte strings in
  `strings`) or the CNAME of a provider-managed one, the DMARC record, and the report authorisation
  records external ``rua``/``ruf`` destinations must publish. `published` is True when the world serves
  what is needed, False when not, None when DNS did not answer.

No Kubernetes here: the operator turns the verdicts into conditions and `records` into ``status.records``
(`RequiredRecord.as_status`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from postmaster.checks.dkim import (
    DkimSelector,
    DkimVerdict,
    SelectorVerdict,
    check_dkim,
    split_txt,
    txt_value_for,
)
from postmaster.checks.dmarc import DmarcPolicy, DmarcVerdict, dmarc_readiness, propose_record
from postmaster.checks.dns import DnsLookup, normalize_name
from postmaster.checks.spf import SpfVerdict, format_txt_strings, spf_readiness
from postmaster.checks.verdict import ConditionStatus, Verdict, worst_status

__all__ = ["DomainReport", "RequiredRecord", "check_domain"]


@dataclass(frozen=True, slots=True)
class RequiredRecord:
    """A record the domain needs, as a person types it into a DNS provider."""

    name: str
    type: Literal["TXT", "CNAME"]
    value: str
    purpose: str
    published: bool | None = None

    @property
    def strings(self) -> tuple[str, ...]:
        """A TXT value cut into character-strings of at most 255 bytes (the split a DNS provider needs)."""
        return tuple(split_txt(self.value)) if self.type == "TXT" else (self.value,)

    @property
    def zone_value(self) -> str:
        """The value as a zone file writes it: quoted strings for TXT, a fully qualified name for CNAME."""
        return format_txt_strings(self.value) if self.type == "TXT" else self.value.rstrip(".") + "."

    def as_status(self) -> dict[str, object]:
        """The shape of ``SendingDomain.status.records[]``."""
        out: dict[str, object] = {"name": self.name, "type": self.type, "value": self.value, "purpose": self.purpose}
        if self.published is not None:
            out["published"] = self.published
        return out

    def as_dict(self) -> dict[str, object]:
        return {**self.as_status(), "published": self.published, "strings": list(self.strings)}


@dataclass(frozen=True, slots=True)
class DomainReport:
    domain: str
    spf: SpfVerdict
    dkim: DkimVerdict
    dmarc: DmarcVerdict
    records: tuple[RequiredRecord, ...]

    @property
    def conditions(self) -> dict[str, Verdict]:
        """The verdict behind each condition type, for the operator's status."""
        return {"SPFReady": self.spf, "DKIMReady": self.dkim, "DMARCReady": self.dmarc}

    @property
    def status(self) -> ConditionStatus:
        return worst_status(v.status for v in self.conditions.values())

    @property
    def ready(self) -> bool:
        return self.status == "True"

    @property
    def unpublished(self) -> tuple[RequiredRecord, ...]:
        return tuple(r for r in self.records if r.published is not True)

    def as_dict(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "status": self.status,
            "spf": {
                "reason": self.spf.reason.value,
                "status": self.spf.status,
                "message": self.spf.message,
                "record": self.spf.record,
                "suggestedRecord": self.spf.suggested_record,
                "dnsLookups": self.spf.dns_lookups,
            },
            "dkim": self.dkim.as_dict(),
            "dmarc": self.dmarc.as_dict(),
            "records": [r.as_dict() for r in self.records],
        }


async def check_domain(
    domain: str,
    *,
    spf_includes: Sequence[str] = (),
    spf_ips: Sequence[str] = (),
    all_qualifier: str = "~",
    selectors: Sequence[DkimSelector | tuple[str, str | None] | str] = (),
    minimum_policy: DmarcPolicy | str = DmarcPolicy.NONE,
    report_addresses: Sequence[str] = (),
    resolver: DnsLookup,
) -> DomainReport:
    """SPF, DKIM and DMARC readiness of `domain`, concurrently, and the records it needs.

    `spf_includes` / `spf_ips`: what the SPF record must authorise (the provider's include, extra senders).
    `all_qualifier`: ``~`` or ``-`` (``~all`` / ``-all`` accepted) for the records proposed.
    `selectors`: `DkimSelector`s, or ``(selector, expected_p)`` pairs, or bare selector names (provider-managed).
    """
    name = normalize_name(domain)
    qualifier = all_qualifier.strip()[:1] if all_qualifier.strip()[:1] in ("~", "-") else "~"
    minimum = DmarcPolicy(minimum_policy)
    spf, dkim, dmarc = await asyncio.gather(
        spf_readiness(
            name,
            authorized_includes=list(spf_includes),
            authorized_ips=list(spf_ips),
            resolver=resolver,
            all_qualifier=qualifier,
        ),
        check_dkim(name, selectors, resolver=resolver),
        dmarc_readiness(name, minimum_policy=minimum, report_addresses=report_addresses, resolver=resolver),
    )
    records = [
        _spf_record(name, spf, spf_includes, spf_ips, qualifier),
        *(_dkim_record(v) for v in dkim.selectors),
        *_dmarc_records(name, dmarc, minimum, report_addresses),
    ]
    return DomainReport(name, spf, dkim, dmarc, tuple(records))


def _published(status: ConditionStatus) -> bool | None:
    return {"True": True, "False": False}.get(status)


def _spf_record(
    domain: str, verdict: SpfVerdict, includes: Sequence[str], ips: Sequence[str], qualifier: str
) -> RequiredRecord:
    terms = [f"include:{i.removeprefix('include:')}" for i in includes]
    for ip in ips:
        text = ip.removeprefix("ip4:").removeprefix("ip6:")
        network = ipaddress.ip_network(text, strict=False)
        kind = "ip4" if network.version == 4 else "ip6"
        terms.append(f"{kind}:{text}")
    if verdict.suggested_record:
        value = verdict.suggested_record
    elif verdict.status == "True" and verdict.record:
        value = verdict.record
    else:
        value = " ".join(["v=spf1", *terms, f"{qualifier}all"])
    who = ", ".join(terms) or "the provider"
    return RequiredRecord(
        name=domain,
        type="TXT",
        value=value,
        purpose=(
            f"SPF: authorises {who} to send for {domain}. A domain has exactly one v=spf1 record: "
            "replace the existing one, keeping other senders you still use"
        ),
        published=_published(verdict.status),
    )


def _dkim_record(verdict: SelectorVerdict) -> RequiredRecord:
    role = "signing key" if verdict.required else "next key of a rotation (publish now; signing starts once served)"
    if verdict.expected_p is not None:
        return RequiredRecord(
            name=verdict.name,
            type="TXT",
            value=txt_value_for(verdict.expected_p),
            purpose=f"DKIM: public key of selector {verdict.selector} ({role})",
            published=_published(verdict.status),
        )
    if not verdict.cname_chain and not verdict.cname_hint:
        # No key known and no provider target: what DNS serves, or a template for the selector's key.
        return RequiredRecord(
            name=verdict.name,
            type="TXT",
            value=verdict.record or "v=DKIM1; k=rsa; p=<the public key of selector " + verdict.selector + ">",
            purpose=f"DKIM: public key of selector {verdict.selector} ({role})",
            published=_published(verdict.status),
        )
    target = verdict.cname_target or verdict.cname_hint or "<the target shown in the provider's DKIM settings>"
    return RequiredRecord(
        name=verdict.name,
        type="CNAME",
        value=target,
        purpose=f"DKIM: selector {verdict.selector}, a key the provider manages and rotates ({role})",
        published=_published(verdict.status),
    )


def _dmarc_records(
    domain: str, verdict: DmarcVerdict, minimum: DmarcPolicy, report_addresses: Sequence[str]
) -> list[RequiredRecord]:
    published = _published(verdict.status)
    if verdict.suggested_record:
        name, value, published = verdict.suggested_name, verdict.suggested_record, False
    elif verdict.record and verdict.record_name:
        # The record found needs no change: published, unless DNS could not tell this time.
        name, value = verdict.record_name, verdict.record
        published = None if verdict.status == "Unknown" else True
    else:
        name = f"_dmarc.{domain}"
        value = propose_record(domain, minimum_policy=minimum, report_addresses=report_addresses)
    purpose = f"DMARC: policy p={minimum.value} or stricter for {domain}"
    if name != f"_dmarc.{domain}":
        purpose += f" (inherited from {verdict.policy_domain}'s record, which covers {domain})"
    records = [RequiredRecord(name, "TXT", value, purpose, published)]
    records += [
        RequiredRecord(
            name=auth.name,
            type="TXT",
            value="v=DMARC1",
            purpose=(
                f"DMARC report authorisation: {auth.destination} agrees to receive reports for "
                f"{auth.policy_domain}; published by whoever runs {auth.destination}"
            ),
            published=auth.authorized,
        )
        for auth in verdict.report_authorizations
        if auth.external and auth.name
    ]
    return records
