"""An external-dns DNSEndpoint carrying the records a SendingDomain needs (spec.publish.externalDNS)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from postmaster.render.ownership import Owner, child_metadata

DNSENDPOINT_GROUP = "externaldns.k8s.io"
DNSENDPOINT_VERSION = "v1alpha1"
DNSENDPOINT_PLURAL = "dnsendpoints"
DEFAULT_TTL = 300


def dnsendpoint_name(domain_object: str) -> str:
    return f"{domain_object}-records"


def dnsendpoint(owner: Owner, records: Sequence[dict[str, Any]], ttl: int = DEFAULT_TTL) -> dict[str, Any]:
    """One endpoint per (name, type); records sharing both become targets of one endpoint, as external-dns wants."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for record in records:
        key = (str(record["name"]).rstrip("."), str(record["type"]))
        targets = grouped.setdefault(key, [])
        if record["value"] not in targets:
            targets.append(str(record["value"]))
    endpoints = [
        {"dnsName": name, "recordType": rtype, "targets": targets, "recordTTL": ttl}
        for (name, rtype), targets in sorted(grouped.items())
    ]
    return {
        "apiVersion": f"{DNSENDPOINT_GROUP}/{DNSENDPOINT_VERSION}",
        "kind": "DNSEndpoint",
        "metadata": child_metadata(owner, dnsendpoint_name(owner.name), "dns-records"),
        "spec": {"endpoints": endpoints},
    }
