"""DNS readiness of SendingDomains: one check loop per domain, one DNS cache for the whole operator.

Each loop checks SPF, DKIM and DMARC at `spec.checkInterval` (default 5m), backing off (up to 8x) while
nothing changes and retrying sooner while DNS does not answer. For operator-managed DKIM it also drives
key rotation: keys live in Secret `<name>-dkim` (one `<selector>.private` PEM per key, the rotation
state in an annotation), owned by the SendingDomain. The outcome is handed to the provider group's
reconcile, which writes status, as the SMTP probe's is.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from postmaster.api.common import parse_duration
from postmaster.api.mailprovider import MailProviderSpec
from postmaster.api.resources import MAIL_PROVIDER, SENDING_DOMAIN
from postmaster.api.sendingdomain import DKIMManagement, SendingDomainSpec
from postmaster.checks.dkim import DkimKey, DkimSelector, generate_key, key_from_pem, provider_cname_target
from postmaster.checks.dkim_rotation import KeyPhase, RotationPlan, RotationState, plan_rotation
from postmaster.checks.dns import DnsCache, DnsResolver, DnsServerFailureError, DnsTimeoutError
from postmaster.checks.domain import DomainReport, check_domain
from postmaster.checks.verdict import ConditionStatus, Verdict
from postmaster.conditions import Cond
from postmaster.handlers import kubeapi
from postmaster.handlers.loops import Key, Loops, Reconcile
from postmaster.render.dnsendpoint import (
    DNSENDPOINT_GROUP,
    DNSENDPOINT_PLURAL,
    DNSENDPOINT_VERSION,
    dnsendpoint,
    dnsendpoint_name,
)
from postmaster.render.ownership import Owner, child_metadata
from postmaster.render.smtp_secret import encode_data
from postmaster.resolution import Endpoint, SpecError, resolve_endpoint

log = logging.getLogger(__name__)

ROTATION_ANNOTATION = "postmaster.dev/dkim-rotation"
RETRY_TRANSIENT = timedelta(seconds=float(os.environ.get("POSTMASTER_DNS_RETRY_SECONDS", "30")))
MAX_BACKOFF_FACTOR = 8


@dataclass(frozen=True)
class DomainView:
    """A DNS check as status sees it."""

    details: tuple[Cond, ...]
    records: list[dict[str, Any]]
    dkim: dict[str, Any]
    checked_at: str
    dns_endpoint: str | None = None
    fingerprint: str = field(default="", compare=False)


_cache = DnsCache()
_resolvers: dict[tuple[tuple[str, ...], bool], DnsResolver] = {}
_views: dict[Key, DomainView] = {}


def dkim_secret_name(domain_object: str) -> str:
    return f"{domain_object}-dkim"


def latest_view(namespace: str, name: str) -> DomainView | None:
    return _views.get((namespace, name))


def resolver_for(spec: SendingDomainSpec) -> DnsResolver:
    """One resolver per set of servers asked; all share the process-wide cache."""
    env = tuple(s.strip() for s in os.environ.get("POSTMASTER_DNS_NAMESERVERS", "").split(",") if s.strip())
    servers = tuple(spec.dns.nameservers) or env
    key = (servers, spec.dns.authoritative)
    resolver = _resolvers.get(key)
    if resolver is None:
        resolver = DnsResolver(list(servers) or None, authoritative=spec.dns.authoritative, cache=_cache)
        _resolvers[key] = resolver
    return resolver


def _condition(type_: str, verdict: Verdict) -> Cond:
    status: ConditionStatus = verdict.status if verdict.status in ("True", "False", "Unknown") else "Unknown"
    return Cond(type_, status, str(verdict.reason), verdict.message)


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _provider_endpoint(namespace: str, spec: SendingDomainSpec) -> Endpoint | None:
    body = await kubeapi.get_custom(MAIL_PROVIDER, namespace, spec.provider_ref.name)
    if body is None:
        return None
    try:
        return resolve_endpoint(MailProviderSpec.model_validate(body.get("spec") or {}))
    except (ValidationError, SpecError):
        return None  # the provider's own status says why; the domain shows ProviderNotReady


async def _server_addresses(resolver: DnsResolver, host: str) -> list[str]:
    """The addresses a custom SMTP server's name resolves to (or the literal), for its SPF record."""
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    addresses: list[str] = []
    for lookup in (resolver.a, resolver.aaaa):
        with contextlib.suppress(DnsTimeoutError, DnsServerFailureError):
            addresses += [str(a) for a in (await lookup(host)).records]
    return addresses


# --- DKIM keys -------------------------------------------------------------------------------------------


@dataclass
class _Keys:
    state: RotationState
    keys: dict[str, DkimKey]


async def _read_keys(namespace: str, name: str) -> _Keys:
    found = await kubeapi.read_secret(namespace, dkim_secret_name(name))
    if found is None:
        return _Keys(RotationState(), {})
    data, annotations = found
    try:
        state = RotationState.from_dict(json.loads(annotations.get(ROTATION_ANNOTATION) or "{}"))
    except ValueError as exc:
        log.warning("DKIM rotation state of %s/%s unreadable (%s): starting over", namespace, name, exc)
        state = RotationState()
    keys: dict[str, DkimKey] = {}
    for selector in state.selectors:
        pem = data.get(f"{selector}.private")
        if pem:
            try:
                keys[selector] = key_from_pem(pem)
            except ValueError:
                log.warning("DKIM key %s of %s/%s unreadable: it will be replaced", selector, namespace, name)
    # Keys the Secret lost are dropped from the state, so a fresh one is generated.
    kept = tuple(k for k in state.keys if k.selector in keys)
    return _Keys(RotationState(kept, state.last_selector), keys)


async def _write_keys(body: dict[str, Any], keys: _Keys) -> None:
    owner = Owner.from_body(SENDING_DOMAIN.kind, body)
    meta = child_metadata(owner, dkim_secret_name(owner.name), "dkim-keys")
    meta["annotations"] = {ROTATION_ANNOTATION: json.dumps(keys.state.to_dict(), sort_keys=True)}
    data = {f"{selector}.private": key.private_key_pem for selector, key in sorted(keys.keys.items())}
    await kubeapi.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta,
                         "data": encode_data(data)})  # fmt: skip


def _operator_selectors(keys: _Keys) -> list[DkimSelector]:
    active = keys.state.active
    out = []
    for key in keys.state.keys:
        if key.selector not in keys.keys:
            continue
        required = key.phase is KeyPhase.ACTIVE or (active is None and key.phase is KeyPhase.PENDING)
        out.append(DkimSelector(key.selector, expected_p=keys.keys[key.selector].p, required=required))
    return out


def _rotation_status(name: str, plan: RotationPlan) -> dict[str, Any]:
    status: dict[str, Any] = {
        "managedBy": DKIMManagement.OPERATOR.value,
        "secret": dkim_secret_name(name),
        "selectors": list(plan.state.selectors),
        "retiringSelectors": [k.selector for k in plan.state.retiring],
        "summary": plan.summary,
    }
    for key, value in (("activeSelector", plan.active), ("pendingSelector", plan.pending), ("waiting", plan.waiting)):
        if value:
            status[key] = value
    return status


# --- one check -----------------------------------------------------------------------------------------


async def check_once(
    body: dict[str, Any], spec: SendingDomainSpec, endpoint: Endpoint
) -> tuple[DomainView, datetime | None]:
    """Check DNS, drive DKIM rotation, publish a DNSEndpoint when asked. Returns the view and when time
    alone changes the rotation plan."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    entry = endpoint.entry
    resolver = resolver_for(spec)
    managed_by = spec.dkim.managed_by or (
        DKIMManagement.PROVIDER if entry.dkim == "provider-cname" else DKIMManagement.OPERATOR
    )
    includes = ([entry.spf_include] if entry.spf_include else []) + list(spec.spf.includes)
    ips = [*spec.spf.ip4, *spec.spf.ip6]
    if not entry.spf_include and not ips:
        ips = await _server_addresses(resolver, endpoint.host)  # a custom server: authorise where it is

    async def run(selectors: list[DkimSelector]) -> DomainReport:
        return await check_domain(
            spec.domain,
            spf_includes=includes,
            spf_ips=ips,
            all_qualifier=spec.spf.all.value[0],
            selectors=selectors,
            minimum_policy=spec.dmarc.minimum_policy.value,
            report_addresses=spec.dmarc.report_addresses,
            resolver=resolver,
        )

    next_change: datetime | None = None
    if managed_by is DKIMManagement.PROVIDER:
        names = spec.dkim.selectors or entry.dkim_selectors
        selectors = [
            DkimSelector(s, None, cname_target=provider_cname_target(endpoint.preset.value, s, spec.domain))
            for s in names
        ]
        report = await run(selectors)
        dkim_status: dict[str, Any] = {"managedBy": DKIMManagement.PROVIDER.value, "selectors": list(names)}
    else:
        keys = await _read_keys(namespace, name)
        report = await run(_operator_selectors(keys))
        served = {v.selector for v in report.dkim.selectors if v.ready}
        rotate_every = parse_duration(spec.dkim.rotate_every) if spec.dkim.rotate_every else None
        plan = plan_rotation(
            keys.state,
            now=_now(),
            served=served,
            domain=spec.domain,
            rotate_every=rotate_every,
            grace=parse_duration(spec.dkim.grace_period),
        )
        if plan.state != keys.state or plan.actions:
            for selector in plan.generate:
                keys.keys[selector] = generate_key(spec.dkim.key_type.value)
                log.info("DKIM %s/%s: generated key %s", namespace, name, selector)
            for selector in plan.drop:
                keys.keys.pop(selector, None)
                log.info("DKIM %s/%s: retired key %s", namespace, name, selector)
            keys.state = plan.state
            await _write_keys(body, keys)
            report = await run(_operator_selectors(keys))  # show the records the new keys need
        dkim_status = _rotation_status(name, plan)
        next_change = plan.next_change

    records = [r.as_status() for r in report.records]
    details = [
        _condition("SPFReady", report.spf),
        _condition("DKIMReady", report.dkim),
        _condition("DMARCReady", report.dmarc),
    ]
    endpoint_name = None
    if spec.publish.external_dns:
        published = await _publish(body, records)
        details.append(published)
        endpoint_name = dnsendpoint_name(name) if published.status == "True" else None
    view = DomainView(tuple(details), records, dkim_status, _fmt(_now()), endpoint_name)
    return view, next_change


async def _publish(body: dict[str, Any], records: list[dict[str, Any]]) -> Cond:
    owner = Owner.from_body(SENDING_DOMAIN.kind, body)
    manifest = dnsendpoint(owner, records)
    try:
        await kubeapi.apply_custom(manifest, DNSENDPOINT_GROUP, DNSENDPOINT_VERSION, DNSENDPOINT_PLURAL)
    except kubeapi.KubeError as exc:
        if exc.status == 404:
            return Cond(
                "DNSPublished",
                "False",
                "ExternalDNSNotInstalled",
                "spec.publish.externalDNS is true but the API server does not serve DNSEndpoint "
                "(externaldns.k8s.io/v1alpha1): install external-dns with its CRD source, "
                "or publish status.records by hand.",
            )
        raise
    return Cond(
        "DNSPublished",
        "True",
        "DNSEndpointWritten",
        f"DNSEndpoint {dnsendpoint_name(owner.name)} carries {len(records)} records for external-dns.",
    )


# --- the loop ------------------------------------------------------------------------------------------


async def _cycle(namespace: str, name: str, streak: int, reconcile: Reconcile) -> tuple[float | None, int]:
    body = await kubeapi.get_custom(SENDING_DOMAIN, namespace, name)
    if body is None:
        _views.pop((namespace, name), None)
        return None, 0
    try:
        spec = SendingDomainSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None, 0  # reported by the reconcile; a change wakes the loop
    endpoint = await _provider_endpoint(namespace, spec)
    if endpoint is None:
        return None, 0  # ProviderNotFound / ProviderNotReady; the provider's arrival wakes the loop
    view, next_change = await check_once(body, spec, endpoint)
    previous = _views.get((namespace, name))
    unchanged = previous is not None and (previous.details, previous.records, previous.dkim) == (
        view.details,
        view.records,
        view.dkim,
    )
    if unchanged and previous is not None:
        view = DomainView(view.details, view.records, view.dkim, previous.checked_at, view.dns_endpoint)
    _views[(namespace, name)] = view
    await reconcile(namespace, spec.provider_ref.name)
    interval = parse_duration(spec.check_interval)
    streak = streak + 1 if unchanged else 0
    delay = interval * min(2**streak, MAX_BACKOFF_FACTOR)
    if any(c.status == "Unknown" for c in view.details):
        delay = min(delay, RETRY_TRANSIENT)
    elif any(c.status != "True" for c in view.details):
        delay = min(delay, interval)  # waiting for a person to publish: look again at the plain interval
    if next_change is not None:
        delay = max(timedelta(seconds=1), min(delay, next_change - _now()))
    return delay.total_seconds(), streak


loops = Loops("DNS check", _cycle, retry=RETRY_TRANSIENT, on_stop=lambda key: _views.pop(key, None))
ensure_checking = loops.ensure
stop_checking = loops.stop
stop_all = loops.stop_all
request_check = loops.wake
