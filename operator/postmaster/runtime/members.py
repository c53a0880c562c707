"""Who belongs to which MailProvider, from memory: typed values for kopf's indexes, and typed reads of them.

kopf keeps each index current from the watch streams it runs anyway, and fills every index before any handler
runs; so "which SendingDomains and RestrictionPolicies name this provider", "which providers read this Secret" and
"what does this provider resolve to" are answered without a LIST or a GET. The index functions here are pure and
small: they run on every event of their kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from postmaster.api.mailprovider import MailProviderSpec
from postmaster.api.restrictionpolicy import RestrictionPolicySpec
from postmaster.api.sendingdomain import SendingDomainSpec
from postmaster.gather import parse_provider_spec
from postmaster.resolution import Endpoint, SpecError, referenced_secrets, resolve_endpoint
from postmaster.statuses import spec_error_from_validation

OURS = {"app.kubernetes.io/managed-by": "postmaster"}


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """A MailProvider as its members see it: its spec resolved to an endpoint, or why it cannot be."""

    uid: str
    generation: int | None
    spec: MailProviderSpec | None
    endpoint: Endpoint | None
    error: SpecError | None


@dataclass(frozen=True, slots=True)
class DomainMember:
    name: str
    domain: str | None  # None: the spec is invalid, so the domain is in no relay table


@dataclass(frozen=True, slots=True)
class PolicyMember:
    name: str
    uid: str
    generation: int | None
    spec: RestrictionPolicySpec | None
    error: SpecError | None


def provider_ref(body: Mapping[str, Any]) -> str | None:
    ref = (body.get("spec") or {}).get("providerRef") or {}
    name = ref.get("name")
    return name if isinstance(name, str) else None


def provider_entry(body: Mapping[str, Any]) -> ProviderEntry:
    meta = body["metadata"]
    spec: MailProviderSpec | None = None
    endpoint: Endpoint | None = None
    error: SpecError | None = None
    try:
        spec = parse_provider_spec(body.get("spec"))
        endpoint = resolve_endpoint(spec)
    except SpecError as exc:
        error = exc
    return ProviderEntry(meta["uid"], meta.get("generation"), spec, endpoint, error)


def domain_member(body: Mapping[str, Any]) -> DomainMember:
    domain = (body.get("spec") or {}).get("domain")
    try:
        SendingDomainSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        domain = None
    return DomainMember(body["metadata"]["name"], domain if isinstance(domain, str) else None)


def policy_member(body: Mapping[str, Any]) -> PolicyMember:
    meta = body["metadata"]
    try:
        return PolicyMember(
            meta["name"], meta["uid"], meta.get("generation"), RestrictionPolicySpec.model_validate(body["spec"]), None
        )
    except ValidationError as exc:
        return PolicyMember(meta["name"], meta["uid"], meta.get("generation"), None, spec_error_from_validation(exc))


def references(entry: ProviderEntry, namespace: str, name: str) -> dict[tuple[str, str, str], str]:
    """(kind, namespace, name) of every Secret and ConfigMap a MailProvider reads -> the MailProvider."""
    if entry.spec is None:
        return {}  # its status says why; a fixed spec is indexed again
    refs = {("Secret", namespace, secret): name for secret in referenced_secrets(entry.spec)}
    if entry.spec.ca_bundle_ref is not None:
        refs[("ConfigMap", namespace, entry.spec.ca_bundle_ref.name)] = name
    return refs


class Members:
    """Typed reads of the operator's kopf indexes (live views kopf keeps current)."""

    def __init__(self, indexes: Mapping[str, Any]) -> None:
        self._providers = indexes["mailproviders_by_name"]
        self._domains = indexes["sendingdomains_by_provider"]
        self._policies = indexes["restrictionpolicies_by_provider"]
        self._references = indexes["providers_by_reference"]
        self._outputs = indexes["outputs_by_name"]

    def provider(self, namespace: str, name: str) -> ProviderEntry | None:
        store = self._providers.get((namespace, name))
        return next(iter(store), None) if store else None

    def domains(self, namespace: str, provider: str) -> list[DomainMember]:
        return sorted(self._domains.get((namespace, provider)) or [], key=lambda d: d.name)

    def policies(self, namespace: str, provider: str) -> list[PolicyMember]:
        return sorted(self._policies.get((namespace, provider)) or [], key=lambda p: p.name)

    def providers_reading(self, kind: str, namespace: str, name: str) -> set[str]:
        return set(self._references.get((kind, namespace, name)) or [])

    def output(self, kind: str, namespace: str, name: str) -> str | None:
        store = self._outputs.get((kind, namespace, name))
        return next(iter(store), None) if store else None
