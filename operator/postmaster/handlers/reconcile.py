"""Reconcile one provider group: a MailProvider and the SendingDomains and RestrictionPolicies naming it.

Level-triggered: whatever the trigger (the provider, a dependent, the credentials Secret, a restart),
the whole group is read fresh, rendered and applied, and each object's status is recomputed. Writes
happen only when something differs, so a trigger that changes nothing writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import ValidationError

from postmaster.api.mailprovider import AuthMethod
from postmaster.api.resources import MAIL_PROVIDER, RESTRICTION_POLICY, SENDING_DOMAIN, Resource
from postmaster.api.restrictionpolicy import RestrictionPolicySpec
from postmaster.api.sendingdomain import SendingDomainSpec
from postmaster.conditions import now_rfc3339
from postmaster.handlers import domains as domain_checks
from postmaster.handlers import kubeapi, probes
from postmaster.handlers.status import object_lock, update_status
from postmaster.render.access import NamedPolicy
from postmaster.render.ownership import Owner
from postmaster.render.relay import relay_config_map, relay_name, relay_secret
from postmaster.render.smtp_secret import smtp_secret, smtp_secret_name
from postmaster.resolution import Endpoint, SpecError, resolve_endpoint
from postmaster.statuses import (
    PROBE_DISABLED,
    DependentFacts,
    ProbeView,
    ProviderFacts,
    mailprovider_status,
    restrictionpolicy_status,
    sendingdomain_status,
    spec_error_from_validation,
)

log = logging.getLogger(__name__)


def provider_ref(body: dict[str, Any]) -> str | None:
    ref = (body.get("spec") or {}).get("providerRef") or {}
    name = ref.get("name")
    return name if isinstance(name, str) else None


def _alive(body: dict[str, Any]) -> bool:
    return not body["metadata"].get("deletionTimestamp")


@dataclass
class _Dependent:
    body: dict[str, Any]
    spec: Any | None
    error: SpecError | None


def _parse(body: dict[str, Any], model: Any) -> _Dependent:
    try:
        return _Dependent(body, model.model_validate(body.get("spec") or {}), None)
    except ValidationError as exc:
        return _Dependent(body, None, spec_error_from_validation(exc))


async def _dependents(resource: Resource, namespace: str, provider: str, model: Any) -> list[_Dependent]:
    items = await kubeapi.list_custom(resource, namespace)
    return [_parse(b, model) for b in items if provider_ref(b) == provider and _alive(b)]


async def reconcile_group(namespace: str, provider_name: str) -> None:
    """Bring the provider's outputs and every member's status in line with the cluster as it is now."""
    async with object_lock("group", namespace, provider_name):
        body = await kubeapi.get_custom(MAIL_PROVIDER, namespace, provider_name)
        policies = await _dependents(RESTRICTION_POLICY, namespace, provider_name, RestrictionPolicySpec)
        domains = await _dependents(SENDING_DOMAIN, namespace, provider_name, SendingDomainSpec)
        if body is None or not _alive(body):
            await _write_dependents(namespace, provider_name, policies, domains, found=False)
            return
        error = await _reconcile_provider(body, policies, domains)
        await _write_dependents(namespace, provider_name, policies, domains, found=True, error=error)


async def _reconcile_provider(
    body: dict[str, Any], policies: list[_Dependent], domains: list[_Dependent]
) -> SpecError | None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    endpoint: Endpoint | None = None
    error: SpecError | None = None
    credentials_needed = True
    probe: ProbeView | str | None = None
    manifests: list[dict[str, Any]] = []
    try:
        spec = probes.parse_spec(body)
        endpoint = resolve_endpoint(spec)
        credentials_needed = endpoint.auth_method is not AuthMethod.NONE
        credentials, oauth = await probes.read_credentials(namespace, spec, endpoint)
        ca_bundle = await probes.read_ca_bundle(namespace, spec)
        probe = probes.latest_view(namespace, name) if spec.probe.enabled else PROBE_DISABLED
        owner = Owner.from_body(MAIL_PROVIDER.kind, body)
        named = [NamedPolicy(namespace, p.body["metadata"]["name"], p.spec) for p in policies if p.spec is not None]
        sending_domains = [d.spec.domain for d in domains if d.spec is not None]
        manifests = [
            smtp_secret(owner, endpoint, credentials, username=oauth.username if oauth else None),
            relay_config_map(owner, endpoint, policies=named, sending_domains=sending_domains, ca_bundle=ca_bundle),
            relay_secret(owner, endpoint, credentials),
        ]
    except SpecError as exc:
        error = exc
    for manifest in manifests:  # nothing is written for an unusable spec: the last good outputs stay
        if await kubeapi.apply(manifest):
            log.info("wrote %s %s/%s", manifest["kind"], namespace, manifest["metadata"]["name"])
    facts = ProviderFacts(
        generation=meta.get("generation"),
        endpoint=endpoint,
        error=error,
        credentials_needed=credentials_needed,
        secret_name=smtp_secret_name(name),
        relay_name=relay_name(name),
        probe=probe,
    )
    await update_status(MAIL_PROVIDER, namespace, name, lambda b, old: mailprovider_status(facts, old, now_rfc3339()))
    return error


def _policy_status(facts: DependentFacts, name: str, _body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    return restrictionpolicy_status(facts, name, old, now_rfc3339())


def _domain_status(
    facts: DependentFacts,
    records: list[dict[str, Any]] | None,
    view: domain_checks.DomainView | None,
    _body: dict[str, Any],
    old: dict[str, Any],
) -> dict[str, Any]:
    if view is None:
        return sendingdomain_status(facts, old, now_rfc3339(), records=records)
    fields = {"dkim": view.dkim, "lastCheckTime": view.checked_at, "dnsEndpoint": view.dns_endpoint}
    return sendingdomain_status(facts, old, now_rfc3339(), records=records, dns_details=view.details, dns_fields=fields)


async def _write_dependents(
    namespace: str,
    provider_name: str,
    policies: list[_Dependent],
    domains: list[_Dependent],
    *,
    found: bool,
    error: SpecError | None = None,
) -> None:
    def facts_of(dep: _Dependent) -> DependentFacts:
        return DependentFacts(
            generation=dep.body["metadata"].get("generation"),
            provider=provider_name,
            provider_found=found,
            provider_error=error,
            own_error=dep.error,
            relay_name=relay_name(provider_name),
        )

    for dep in policies:
        name = dep.body["metadata"]["name"]
        await update_status(RESTRICTION_POLICY, namespace, name, partial(_policy_status, facts_of(dep), name))
    for dep in domains:
        name = dep.body["metadata"]["name"]
        facts = facts_of(dep)
        view = domain_checks.latest_view(namespace, name) if found and error is None else None
        records = view.records if view is not None else None
        if found and error is None and dep.spec is not None:
            domain_checks.ensure_checking(namespace, name, reconcile_group)
            if view is None:
                domain_checks.request_check(namespace, name)
        await update_status(SENDING_DOMAIN, namespace, name, partial(_domain_status, facts, records, view))
