"""Pure status computation: gathered facts in, the status each object should carry out.

Every function takes the object's old status so that `lastTransitionTime` survives and fields owned by
other writers (the probe, the DNS checks) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from postmaster.conditions import RECONCILING, STALLED, Cond, find, merge_conditions, summarize
from postmaster.resolution import Endpoint, SpecError

CREDENTIALS_RESOLVED = "CredentialsResolved"
SMTP_REACHABLE = "SMTPReachable"
PROVIDER_RESOLVED = "ProviderResolved"
RENDERED = "Rendered"


def spec_error_from_validation(exc: ValidationError) -> SpecError:
    """The first pydantic error as a SpecError naming the field as the manifest spells it."""
    err = exc.errors()[0]
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return SpecError(path, f"{err['msg']}{more}")


def stalled(error: SpecError) -> Cond:
    return Cond("Stalled", "True", error.reason, f"{error.field_path}: {error.message}")


def _base(old: dict[str, Any], generation: int | None, updates: list[Cond], now: str) -> dict[str, Any]:
    new = dict(old)
    new["observedGeneration"] = generation
    new["conditions"] = merge_conditions(old.get("conditions"), updates, generation=generation, now=now)
    return new


@dataclass(frozen=True)
class ProbeView:
    """A probe outcome as status sees it: the SMTPReachable condition and the status.probe summary."""

    condition: Cond
    summary: dict[str, Any]
    needs_person: bool


PROBE_DISABLED = "disabled"


@dataclass(frozen=True)
class ProviderFacts:
    generation: int | None
    endpoint: Endpoint | None = None
    error: SpecError | None = None
    credentials_needed: bool = True
    secret_name: str | None = None
    relay_name: str | None = None
    # The latest probe; None keeps what status already says (e.g. after an operator restart), and
    # PROBE_DISABLED drops SMTPReachable when spec.probe.enabled is false.
    probe: ProbeView | str | None = None


def _probe_from_old(old: dict[str, Any]) -> ProbeView | None:
    cond = find(old.get("conditions"), SMTP_REACHABLE)
    if cond is None:
        return None
    summary = old.get("probe") or {}
    return ProbeView(
        Cond(SMTP_REACHABLE, cond["status"], cond["reason"], cond.get("message", "")),
        summary,
        bool(summary.get("needsPerson")),
    )


def mailprovider_status(facts: ProviderFacts, old: dict[str, Any], now: str) -> dict[str, Any]:
    details: list[Cond] = []
    error = facts.error
    if error is not None and error.reason in ("SecretNotFound", "SecretKeyNotFound", "InvalidCredentials"):
        details.append(Cond(CREDENTIALS_RESOLVED, "False", error.reason, f"{error.field_path}: {error.message}"))
    elif error is None:
        details.append(
            Cond(CREDENTIALS_RESOLVED, "True", "CredentialsFound", "The credentials Secret and its keys exist.")
            if facts.credentials_needed
            else Cond(CREDENTIALS_RESOLVED, "True", "NoCredentialsNeeded", "auth.method needs no Secret.")
        )
    probe = facts.probe if facts.probe is not None else _probe_from_old(old)
    remove: list[str] = []
    reconciling = None
    if isinstance(probe, ProbeView):
        details.append(probe.condition)
    elif probe == PROBE_DISABLED:
        remove.append(SMTP_REACHABLE)
    elif error is None and facts.endpoint is not None:
        pending = Cond(
            SMTP_REACHABLE,
            "Unknown",
            "ProbePending",
            f"Probing {facts.endpoint.host}:{facts.endpoint.port}; the result appears here in seconds.",
        )
        details.append(pending)
        reconciling = Cond(RECONCILING, "True", "ProbePending", pending.message)
    ready_message = ""
    if facts.endpoint is not None and error is None:
        ready_message = (
            f"Secret {facts.secret_name} (for applications) and ConfigMap/Secret {facts.relay_name} (for the "
            f"relay) are up to date for {facts.endpoint.host}:{facts.endpoint.port} ({facts.endpoint.tls.value})"
            + ("; the SMTP probe passed." if isinstance(probe, ProbeView) else ".")
        )
        if facts.endpoint.entry.testing_only:
            ready_message += f" {facts.endpoint.entry.title} captures mail for testing: do not use it in production."
    stall = stalled(error) if error else None
    if stall is None and isinstance(probe, ProbeView) and probe.needs_person and probe.condition.status == "False":
        stall = Cond(STALLED, "True", probe.condition.reason, probe.condition.message)
    if error is None and isinstance(probe, ProbeView) and probe.condition.status == "Unknown":
        reconciling = Cond(RECONCILING, "True", probe.condition.reason, "Retrying: " + probe.condition.message)
    updates = summarize(details, ready_message=ready_message, stalled=stall, reconciling=reconciling)
    new = _base(old, facts.generation, updates, now)
    new["conditions"] = merge_conditions(new["conditions"], [], generation=facts.generation, now=now, remove=remove)
    if isinstance(probe, ProbeView) and probe.summary:
        new["probe"] = probe.summary
    elif probe == PROBE_DISABLED:
        new.pop("probe", None)
    if facts.endpoint is not None:  # an unusable spec keeps the last resolved endpoint: the outputs still hold it
        new["endpoint"] = {
            "host": facts.endpoint.host,
            "port": facts.endpoint.port,
            "tls": facts.endpoint.tls.value,
            "authMethod": facts.endpoint.auth_method.value,
        }
    if error is None and facts.secret_name:
        new["outputs"] = {
            "secret": facts.secret_name,
            "relayConfigMap": facts.relay_name,
            "relaySecret": facts.relay_name,
        }
    return new


@dataclass(frozen=True)
class DependentFacts:
    """What a SendingDomain or RestrictionPolicy learns from its provider group's reconcile."""

    generation: int | None
    provider: str
    provider_found: bool
    provider_error: SpecError | None = None
    own_error: SpecError | None = None
    relay_name: str | None = None


def _provider_condition(facts: DependentFacts) -> Cond:
    if not facts.provider_found:
        return Cond(
            PROVIDER_RESOLVED,
            "False",
            "ProviderNotFound",
            f"MailProvider {facts.provider!r} does not exist in this namespace: create it or fix "
            "spec.providerRef.name. This clears by itself when the provider appears.",
        )
    if facts.provider_error is not None:
        return Cond(
            PROVIDER_RESOLVED,
            "False",
            "ProviderNotReady",
            f"MailProvider {facts.provider!r} is stalled ({facts.provider_error.reason}): "
            f"{facts.provider_error.field_path}: {facts.provider_error.message}",
        )
    return Cond(PROVIDER_RESOLVED, "True", "ProviderFound", f"MailProvider {facts.provider!r} is usable.")


def restrictionpolicy_status(facts: DependentFacts, name: str, old: dict[str, Any], now: str) -> dict[str, Any]:
    provider = _provider_condition(facts)
    if facts.own_error is not None:
        rendered = Cond(
            RENDERED, "False", facts.own_error.reason, "Fix the spec; the relay keeps the last good tables."
        )
    elif provider.status != "True":
        rendered = Cond(RENDERED, "False", provider.reason, "Waiting for the provider; nothing was rendered.")
    else:
        rendered = Cond(
            RENDERED,
            "True",
            "RenderedIntoRelay",
            f"Compiled into ConfigMap {facts.relay_name} as send-{name}.pcre and receive-{name}.pcre.",
        )
    details = [provider, rendered]
    updates = summarize(
        details,
        ready_message=f"Enforced by the relay of MailProvider {facts.provider!r} (ConfigMap {facts.relay_name}).",
        stalled=stalled(facts.own_error) if facts.own_error else None,
    )
    new = _base(old, facts.generation, updates, now)
    if rendered.status == "True":
        new["relayConfigMap"] = facts.relay_name
    else:
        new.pop("relayConfigMap", None)
    return new


DNS_CONDITIONS = ("SPFReady", "DKIMReady", "DMARCReady")


def sendingdomain_status(
    facts: DependentFacts,
    old: dict[str, Any],
    now: str,
    *,
    records: list[dict[str, Any]] | None = None,
    dns_details: tuple[Cond, ...] | None = None,
    dns_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`dns_details` None means no DNS check has finished yet: the DNS conditions say so (Unknown)."""
    provider = _provider_condition(facts)
    reconciling = None
    if dns_details is None:
        pending = "DNS checks of the SPF, DKIM and DMARC records are running; results appear here in seconds."
        if provider.status != "True":
            pending = "DNS is checked once the provider is usable."
        dns_details = tuple(Cond(t, "Unknown", "DNSCheckPending", pending) for t in DNS_CONDITIONS)
        if provider.status == "True":
            reconciling = Cond(RECONCILING, "True", "DNSCheckPending", pending)
    elif any(c.status == "Unknown" for c in dns_details):
        first = next(c for c in dns_details if c.status == "Unknown")
        reconciling = Cond(RECONCILING, "True", first.reason, "Retrying: " + first.message)
    details = [provider, *dns_details]
    updates = summarize(
        details,
        ready_message=(
            f"Sends through MailProvider {facts.provider!r}; SPF, DKIM and DMARC are published as status.records lists."
        ),
        stalled=stalled(facts.own_error) if facts.own_error else None,
        reconciling=reconciling,
    )
    new = _base(old, facts.generation, updates, now)
    new["provider"] = facts.provider if provider.status == "True" else None
    if new["provider"] is None:
        new.pop("provider")
    if records is not None:
        new["records"] = records
    for key, value in (dns_fields or {}).items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new
