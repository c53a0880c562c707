"""DNS readiness of SendingDomains: one schedule per domain, one DNS cache for the whole operator.

Each domain is checked (SPF, DKIM, DMARC) at `spec.checkInterval` (default 5m), backing off up to 8x while
nothing changes and retrying sooner while DNS does not answer. For operator-managed DKIM the check also drives key
rotation: keys live in Secret `<name>-dkim` (one `<selector>.private` PEM per key, the rotation state in an
annotation), owned by the SendingDomain. The check writes only its own domain's status — `ProviderResolved`, the
DNS conditions, `records`, `dkim` and `Ready` — and only when it differs from what is stored.

What it knows of the provider comes from memory: the providers index (does it exist, what does its spec resolve
to) and the outputs reconcile's last verdict (are its Secrets usable).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from postmaster.api.common import Condition, parse_duration
from postmaster.api.resources import SENDING_DOMAIN
from postmaster.api.sendingdomain import DKIMManagement, DKIMStatus, DNSRecord, SendingDomainSpec, SendingDomainStatus
from postmaster.checks.dkim import DkimKey, DkimSelector, generate_key, key_from_pem, provider_cname_target
from postmaster.checks.dkim_rotation import KeyPhase, RotationPlan, RotationState, plan_rotation
from postmaster.checks.dns import DnsCache, DnsResolver, DnsServerFailureError, DnsTimeoutError
from postmaster.checks.domain import DomainReport, check_domain
from postmaster.checks.verdict import ConditionStatus, Verdict
from postmaster.conditions import Stamp, now_rfc3339
from postmaster.render.dnsendpoint import (
    DNSENDPOINT_GROUP,
    DNSENDPOINT_PLURAL,
    DNSENDPOINT_VERSION,
    dnsendpoint,
    dnsendpoint_name,
)
from postmaster.render.ownership import Owner, child_metadata
from postmaster.render.smtp_secret import encode_data
from postmaster.resolution import Endpoint, SpecError
from postmaster.runtime.kube import Kube, KubeError, ObjectRef
from postmaster.runtime.scheduler import Scheduler
from postmaster.statuses import DnsOutcome, ProviderStanding, sendingdomain_status, spec_error_from_validation

if TYPE_CHECKING:
    from postmaster.runtime import Runtime

log = logging.getLogger(__name__)

ROTATION_ANNOTATION = "postmaster.dev/dkim-rotation"
MAX_BACKOFF_FACTOR = 8
FIRST_WRITE_WAIT = 2.0  # a new domain's first check that takes longer than this shows DNSCheckPending meanwhile
Key = tuple[str, str]


def dkim_secret_name(domain_object: str) -> str:
    return f"{domain_object}-dkim"


def _condition(stamp: Stamp, type_: str, verdict: Verdict) -> Condition:
    status: ConditionStatus = verdict.status if verdict.status in ("True", "False", "Unknown") else "Unknown"
    return stamp.condition(type_, status, str(verdict.reason), verdict.message)


def _now() -> datetime:
    return datetime.now(UTC)


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
    stored: bool = False  # the Secret exists


async def _read_keys(kube: Kube, namespace: str, name: str) -> _Keys:
    found = await kube.read_secret(namespace, dkim_secret_name(name))
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
    return _Keys(RotationState(kept, state.last_selector), keys, stored=True)


async def _write_keys(kube: Kube, owner: Owner, keys: _Keys) -> None:
    meta = child_metadata(owner, dkim_secret_name(owner.name), "dkim-keys")
    meta["annotations"] = {ROTATION_ANNOTATION: json.dumps(keys.state.to_dict(), sort_keys=True)}
    data = {f"{selector}.private": key.private_key_pem for selector, key in sorted(keys.keys.items())}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": encode_data(data)}
    await kube.put(secret, exists=keys.stored)
    keys.stored = True


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
    kube: Kube, owner: Owner, spec: SendingDomainSpec, endpoint: Endpoint, *, resolver: DnsResolver, stamp: Stamp
) -> tuple[DnsOutcome, datetime | None]:
    """Check DNS, drive DKIM rotation, publish a DNSEndpoint when asked. Returns the outcome and when time alone
    changes the rotation plan."""
    namespace, name = owner.namespace, owner.name
    entry = endpoint.entry
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
        dkim_status = DKIMStatus(managed_by=DKIMManagement.PROVIDER.value, selectors=list(names))
    else:
        keys = await _read_keys(kube, namespace, name)
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
            await _write_keys(kube, owner, keys)
            report = await run(_operator_selectors(keys))  # show the records the new keys need
        dkim_status = DKIMStatus.model_validate(_rotation_status(name, plan))
        next_change = plan.next_change

    records = [DNSRecord.model_validate(r.as_status()) for r in report.records]
    details = [
        _condition(stamp, "SPFReady", report.spf),
        _condition(stamp, "DKIMReady", report.dkim),
        _condition(stamp, "DMARCReady", report.dmarc),
    ]
    endpoint_name = None
    if spec.publish.external_dns:
        published = await _publish(kube, owner, [r.as_status() for r in report.records], stamp)
        details.append(published)
        endpoint_name = dnsendpoint_name(name) if published.status == "True" else None
    return DnsOutcome(tuple(details), tuple(records), dkim_status, endpoint_name), next_change


async def _publish(kube: Kube, owner: Owner, records: list[dict[str, Any]], stamp: Stamp) -> Condition:
    manifest = dnsendpoint(owner, records)
    try:
        await kube.apply_custom(manifest, DNSENDPOINT_GROUP, DNSENDPOINT_VERSION, DNSENDPOINT_PLURAL)
    except KubeError as exc:
        if exc.status == 404:
            return stamp.condition(
                "DNSPublished",
                "False",
                "ExternalDNSNotInstalled",
                "spec.publish.externalDNS is true but the API server does not serve DNSEndpoint "
                "(externaldns.k8s.io/v1alpha1): install external-dns with its CRD source, "
                "or publish status.records by hand.",
            )
        raise
    return stamp.condition(
        "DNSPublished",
        "True",
        "DNSEndpointWritten",
        f"DNSEndpoint {dnsendpoint_name(owner.name)} carries {len(records)} records for external-dns.",
    )


# --- the schedule --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Domain:
    """What the operator holds of one SendingDomain between checks: small, for ten thousand of them (the spec as
    compact JSON, parsed when it is checked, not as a tree of models)."""

    uid: str
    generation: int | None
    provider: str | None  # spec.providerRef.name as written, even when another field makes the spec invalid
    domain: str | None  # spec.domain when the spec is valid: what the provider's relay tables list
    spec: bytes
    error: SpecError | None
    streak: int = 0
    checked: bool = False  # a check finished since this domain (or the operator) started

    def parsed(self) -> SendingDomainSpec | SpecError:
        return self.error or SendingDomainSpec.model_validate_json(self.spec)


class DomainChecks:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        settings = runtime.settings
        self._retry = timedelta(seconds=settings.dns_retry_seconds)
        self.scheduler: Scheduler[Key] = Scheduler(
            "DNS check", self._step, concurrency=settings.dns_concurrency, retry_first=settings.dns_retry_seconds
        )
        self._domains: dict[Key, _Domain] = {}
        self._cache = DnsCache(max_entries=settings.dns_cache_entries)
        self._resolvers: dict[tuple[tuple[str, ...], bool], DnsResolver] = {}

    def __len__(self) -> int:
        return len(self._domains)

    def resolver_for(self, spec: SendingDomainSpec) -> DnsResolver:
        """One resolver per set of servers asked; all share the operator's cache."""
        servers = tuple(spec.dns.nameservers) or self._rt.settings.dns_nameservers
        key = (servers, spec.dns.authoritative)
        resolver = self._resolvers.get(key)
        if resolver is None:
            resolver = DnsResolver(list(servers) or None, authoritative=spec.dns.authoritative, cache=self._cache)
            self._resolvers[key] = resolver
        return resolver

    def observe(self, body: Mapping[str, Any], *, deleted: bool) -> set[str]:
        """Take an event of a SendingDomain; schedule its check when it is new or its spec changed.

        Returns the MailProviders whose outputs depend on what changed (the domain joined, left or changed name)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        known = self._domains.get(key)
        before = _membership(known)
        if deleted:
            self._domains.pop(key, None)
            self.scheduler.forget(key)
            return {before[0]} - {None}  # type: ignore[return-value]
        if known is not None and known.uid == meta["uid"] and known.generation == meta.get("generation"):
            return set()  # a status write (most likely the operator's own): nothing to do
        raw = dict(body.get("spec") or {})
        error: SpecError | None = None
        domain: str | None = None
        try:
            domain = SendingDomainSpec.model_validate(raw).domain
        except ValidationError as exc:
            error = spec_error_from_validation(exc)
        raw_ref = (raw.get("providerRef") or {}).get("name")
        provider = raw_ref if isinstance(raw_ref, str) else None
        compact = json.dumps(raw, separators=(",", ":")).encode()
        state = _Domain(meta["uid"], meta.get("generation"), provider, domain, compact, error)
        self._domains[key] = state
        self.scheduler.wake(key)
        after = _membership(state)
        if known is not None and known.uid == meta["uid"] and before == after:
            return set()
        return {p for p in (before[0], after[0]) if p is not None}

    def wake(self, namespace: str, name: str) -> None:
        if (namespace, name) in self._domains:
            self.scheduler.wake((namespace, name))

    def _standing(self, namespace: str, spec: SendingDomainSpec) -> tuple[ProviderStanding, Endpoint | None]:
        entry = self._rt.members.provider(namespace, spec.provider_ref.name)
        standing = self._rt.outputs.standing(namespace, spec.provider_ref.name)
        return standing, entry.endpoint if entry is not None else None

    async def _step(self, key: Key) -> float | None:
        state = self._domains.get(key)
        if state is None:
            return None
        namespace, name = key
        rt = self._rt
        ref = ObjectRef(SENDING_DOMAIN.kind, namespace, name, state.uid)
        stamp = Stamp(state.generation, now_rfc3339())
        spec = state.parsed()
        if isinstance(spec, SpecError):
            provider = self._rt.outputs.standing(namespace, state.provider or "")
            await self._write(ref, lambda old: sendingdomain_status(provider, spec, None, old, stamp))
            return None  # a fixed spec is a new generation, which wakes the check
        standing, endpoint = self._standing(namespace, spec)
        if endpoint is None or not standing.found:
            await self._write(ref, lambda old: sendingdomain_status(standing, None, None, old, stamp))
            return None  # the provider's arrival or repair wakes the check
        owner = Owner(SENDING_DOMAIN.kind, name, namespace, state.uid)
        check = asyncio.ensure_future(
            check_once(rt.kube, owner, spec, endpoint, resolver=self.resolver_for(spec), stamp=stamp)
        )
        if not state.checked:
            done, _ = await asyncio.wait({check}, timeout=FIRST_WRITE_WAIT)
            if not done:  # a slow first check: say it runs, then wait for it
                await self._write(ref, lambda old: sendingdomain_status(standing, None, None, old, stamp))
        try:
            outcome, next_change = await check
        finally:
            if not check.done():
                check.cancel()
        state.checked = True
        new = await self._write(ref, lambda old: sendingdomain_status(standing, None, outcome, old, stamp))
        changed = new is not None and new.last_check_time == stamp.now
        interval = parse_duration(spec.check_interval)
        state.streak = 0 if changed else state.streak + 1
        delay: timedelta = interval * min(2**state.streak, MAX_BACKOFF_FACTOR)
        if any(c.status == "Unknown" for c in outcome.details):
            delay = min(delay, self._retry)
        elif any(c.status != "True" for c in outcome.details):
            delay = min(delay, interval)  # waiting for a person to publish: look again at the plain interval
        if next_change is not None:
            delay = max(timedelta(seconds=1), min(delay, next_change - _now()))
        return delay.total_seconds()

    async def _write(self, ref: ObjectRef, compute: Any) -> SendingDomainStatus | None:
        return await self._rt.statuses.update(SENDING_DOMAIN, ref, SendingDomainStatus, compute)


def _membership(state: _Domain | None) -> tuple[str | None, str | None]:
    """(provider, domain in its relay tables) of a domain: what its provider's outputs depend on."""
    if state is None:
        return None, None
    return state.provider, state.domain
