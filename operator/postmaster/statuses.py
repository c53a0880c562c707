"""Pure status decisions: gathered facts and the stored status in, the typed status each object should carry out.

Each function takes the object's stored status so that `lastTransitionTime` survives and what another writer
owns is kept: a MailProvider's status has two writers (the outputs reconcile owns `CredentialsResolved`,
`endpoint` and `outputs`; the probe loop owns `SMTPReachable` and `probe`), and both call
`mailprovider_status`, so `Ready` is always summarized the same way from the same stored conditions.
A SendingDomain's status has one writer (its DNS loop), a RestrictionPolicy's one (its provider's outputs
reconcile, which is what compiles it into the relay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from postmaster.api.common import Condition
from postmaster.api.mailprovider import MailProviderOutputs, MailProviderStatus, ProbeStatus, ProviderEndpointStatus
from postmaster.api.restrictionpolicy import RestrictionPolicyStatus
from postmaster.api.sendingdomain import DKIMStatus, DNSRecord, SendingDomainStatus
from postmaster.conditions import RECONCILING, STALLED, Stamp, find, merge_conditions, summarize
from postmaster.resolution import Endpoint, SpecError

CREDENTIALS_RESOLVED = "CredentialsResolved"
SMTP_REACHABLE = "SMTPReachable"
PROVIDER_RESOLVED = "ProviderResolved"
RENDERED = "Rendered"
DNS_CONDITIONS = ("SPFReady", "DKIMReady", "DMARCReady")
DNS_PUBLISHED = "DNSPublished"
RENDERING = "Rendering"
_CREDENTIAL_REASONS = ("SecretNotFound", "SecretKeyNotFound", "InvalidCredentials", "CABundleNotFound")


def spec_error_from_validation(exc: ValidationError) -> SpecError:
    """The first pydantic error as a SpecError naming the field as the manifest spells it."""
    err = exc.errors()[0]
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return SpecError(path, f"{err['msg']}{more}")


def stalled(error: SpecError, stamp: Stamp) -> Condition:
    return stamp.condition(STALLED, "True", error.reason, f"{error.field_path}: {error.message}")


# --- MailProvider ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeOutcome:
    """A probe as status shows it: the SMTPReachable condition and the status.probe summary."""

    condition: Condition
    summary: ProbeStatus

    @property
    def needs_person(self) -> bool:
        return bool(self.summary.needs_person)


PROBE_DISABLED: Literal["disabled"] = "disabled"
ProbeInput = ProbeOutcome | Literal["disabled"] | None


@dataclass(frozen=True)
class ProviderFacts:
    """What gathering a MailProvider's inputs found: the resolved endpoint, or why the spec cannot be used."""

    endpoint: Endpoint | None
    error: SpecError | None
    credentials_needed: bool
    secret_name: str
    relay_name: str
    outputs_written: bool = False  # set by the outputs reconcile once it wrote them; the probe keeps what is stored


def stored_probe(old: MailProviderStatus) -> ProbeOutcome | None:
    """The probe outcome the stored status carries (after a restart, or when the reconcile writes)."""
    cond = find(old.conditions, SMTP_REACHABLE)
    if cond is None:
        return None
    return ProbeOutcome(cond, old.probe or ProbeStatus())


def mailprovider_status(
    facts: ProviderFacts, probe: ProbeInput, old: MailProviderStatus, stamp: Stamp
) -> MailProviderStatus:
    """`probe` None keeps the stored SMTPReachable and status.probe; PROBE_DISABLED drops them."""
    details: list[Condition] = []
    error = facts.error
    if error is not None and error.reason in _CREDENTIAL_REASONS:
        details.append(
            stamp.condition(CREDENTIALS_RESOLVED, "False", error.reason, f"{error.field_path}: {error.message}")
        )
    elif error is None:
        details.append(
            stamp.condition(
                CREDENTIALS_RESOLVED, "True", "CredentialsFound", "The credentials Secret and its keys exist."
            )
            if facts.credentials_needed
            else stamp.condition(CREDENTIALS_RESOLVED, "True", "NoCredentialsNeeded", "auth.method needs no Secret.")
        )
    outcome = stored_probe(old) if probe is None else probe
    remove: list[str] = []
    reconciling = None
    if isinstance(outcome, ProbeOutcome):
        details.append(outcome.condition)
    elif outcome == PROBE_DISABLED:
        remove.append(SMTP_REACHABLE)
    elif error is None and facts.endpoint is not None:
        pending = stamp.condition(
            SMTP_REACHABLE,
            "Unknown",
            "ProbePending",
            f"Probing {facts.endpoint.host}:{facts.endpoint.port}; the result appears here in seconds.",
        )
        details.append(pending)
        reconciling = stamp.condition(RECONCILING, "True", "ProbePending", pending.message)
    ready_message = ""
    if facts.endpoint is not None and error is None:
        ready_message = (
            f"Secret {facts.secret_name} (for applications) and ConfigMap/Secret {facts.relay_name} (for the "
            f"relay) are up to date for {facts.endpoint.host}:{facts.endpoint.port} ({facts.endpoint.tls.value})"
            + ("; the SMTP probe passed." if isinstance(outcome, ProbeOutcome) else ".")
        )
        if facts.endpoint.entry.testing_only:
            ready_message += f" {facts.endpoint.entry.title} captures mail for testing: do not use it in production."
    stall = stalled(error, stamp) if error else None
    if (
        stall is None
        and isinstance(outcome, ProbeOutcome)
        and outcome.needs_person
        and outcome.condition.status == "False"
    ):
        stall = stamp.condition(STALLED, "True", outcome.condition.reason, outcome.condition.message)
    if error is None and isinstance(outcome, ProbeOutcome) and outcome.condition.status == "Unknown":
        reconciling = stamp.condition(
            RECONCILING, "True", outcome.condition.reason, "Retrying: " + outcome.condition.message
        )
    rendered = facts.outputs_written or old.outputs is not None
    if error is None and not rendered:  # the probe may finish first: Ready waits for the outputs to exist
        rendering = stamp.condition(
            RENDERING, "Unknown", "Rendering", f"Writing Secret {facts.secret_name} and ConfigMap {facts.relay_name}."
        )
        details.insert(0, rendering)
        reconciling = reconciling or stamp.condition(RECONCILING, "True", "Rendering", rendering.message)
    updates = summarize(details, stamp, ready_message=ready_message, stalled=stall, reconciling=reconciling)
    updates = [c for c in updates if c.type != RENDERING]  # a moment, not a condition of its own
    new = old.model_copy(deep=True)
    new.observed_generation = stamp.generation
    new.conditions = merge_conditions(old.conditions, updates, remove=remove)
    if isinstance(outcome, ProbeOutcome):
        new.probe = outcome.summary if outcome.summary != ProbeStatus() else old.probe
    elif outcome == PROBE_DISABLED:
        new.probe = None
    if facts.endpoint is not None:  # an unusable spec keeps the last resolved endpoint: the outputs still hold it
        new.endpoint = ProviderEndpointStatus(
            host=facts.endpoint.host,
            port=facts.endpoint.port,
            tls=facts.endpoint.tls.value,
            auth_method=facts.endpoint.auth_method.value,
        )
    if error is None and facts.outputs_written:
        new.outputs = MailProviderOutputs(
            secret=facts.secret_name, relay_config_map=facts.relay_name, relay_secret=facts.relay_name
        )
    return new


# --- SendingDomain and RestrictionPolicy -------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderStanding:
    """What a SendingDomain or RestrictionPolicy knows of the MailProvider it names."""

    name: str
    found: bool
    error: SpecError | None = None

    @property
    def usable(self) -> bool:
        return self.found and self.error is None


def provider_condition(provider: ProviderStanding, stamp: Stamp) -> Condition:
    if not provider.found:
        return stamp.condition(
            PROVIDER_RESOLVED,
            "False",
            "ProviderNotFound",
            f"MailProvider {provider.name!r} does not exist in this namespace: create it or fix "
            "spec.providerRef.name. This clears by itself when the provider appears.",
        )
    if provider.error is not None:
        return stamp.condition(
            PROVIDER_RESOLVED,
            "False",
            "ProviderNotReady",
            f"MailProvider {provider.name!r} is stalled ({provider.error.reason}): "
            f"{provider.error.field_path}: {provider.error.message}",
        )
    return stamp.condition(PROVIDER_RESOLVED, "True", "ProviderFound", f"MailProvider {provider.name!r} is usable.")


def restrictionpolicy_status(
    provider: ProviderStanding,
    own_error: SpecError | None,
    old: RestrictionPolicyStatus,
    stamp: Stamp,
    *,
    name: str,
    relay_name: str,
) -> RestrictionPolicyStatus:
    resolved = provider_condition(provider, stamp)
    if own_error is not None:
        rendered = stamp.condition(
            RENDERED, "False", own_error.reason, "Fix the spec; the relay keeps the last good tables."
        )
    elif resolved.status != "True":
        rendered = stamp.condition(
            RENDERED, "False", resolved.reason, "Waiting for the provider; nothing was rendered."
        )
    else:
        rendered = stamp.condition(
            RENDERED,
            "True",
            "RenderedIntoRelay",
            f"Compiled into ConfigMap {relay_name} as send-{name}.pcre and receive-{name}.pcre.",
        )
    updates = summarize(
        [resolved, rendered],
        stamp,
        ready_message=f"Enforced by the relay of MailProvider {provider.name!r} (ConfigMap {relay_name}).",
        stalled=stalled(own_error, stamp) if own_error else None,
    )
    new = old.model_copy(deep=True)
    new.observed_generation = stamp.generation
    new.conditions = merge_conditions(old.conditions, updates)
    new.relay_config_map = relay_name if rendered.status == "True" else None
    return new


@dataclass(frozen=True)
class DnsOutcome:
    """One DNS check of a SendingDomain as status shows it."""

    details: tuple[Condition, ...]
    records: tuple[DNSRecord, ...]
    dkim: DKIMStatus | None
    dns_endpoint: str | None = None


def _verdicts(conditions: Iterable[Condition]) -> list[tuple[str, str, str, str]]:
    return [(c.type, c.status, c.reason, c.message) for c in conditions]


def sendingdomain_status(
    provider: ProviderStanding,
    own_error: SpecError | None,
    dns: DnsOutcome | None,
    old: SendingDomainStatus,
    stamp: Stamp,
) -> SendingDomainStatus:
    """`dns` None: no check has finished since the object (or the operator) started, so the stored DNS
    conditions stand; where there are none yet, they say the check is pending (Unknown)."""
    resolved = provider_condition(provider, stamp)
    reconciling = None
    remove: list[str] = []
    if dns is not None:
        dns_details = list(dns.details)
        if not any(c.type == DNS_PUBLISHED for c in dns.details):
            remove.append(DNS_PUBLISHED)
    else:
        stored = [c for c in old.conditions if c.type in (*DNS_CONDITIONS, DNS_PUBLISHED)]
        if own_error is None and len([c for c in stored if c.type in DNS_CONDITIONS]) == len(DNS_CONDITIONS):
            dns_details = stored
        else:
            pending = "DNS checks of the SPF, DKIM and DMARC records are running; results appear here in seconds."
            dns_details = [stamp.condition(t, "Unknown", "DNSCheckPending", pending) for t in DNS_CONDITIONS]
            if own_error is None:
                reconciling = stamp.condition(RECONCILING, "True", "DNSCheckPending", pending)
    unknown = next((c for c in dns_details if c.status == "Unknown"), None)
    if reconciling is None and unknown is not None and own_error is None:
        reconciling = stamp.condition(RECONCILING, "True", unknown.reason, "Retrying: " + unknown.message)
    updates = summarize(
        [resolved, *dns_details],
        stamp,
        ready_message=(
            f"Sends through MailProvider {provider.name!r}; SPF, DKIM and DMARC are published as status.records lists."
        ),
        stalled=stalled(own_error, stamp) if own_error else None,
        reconciling=reconciling,
    )
    new = old.model_copy(deep=True)
    new.observed_generation = stamp.generation
    new.conditions = merge_conditions(old.conditions, updates, remove=remove)
    new.provider = provider.name if resolved.status == "True" else None
    if dns is not None:
        stored = [c for c in old.conditions if c.type in (*DNS_CONDITIONS, DNS_PUBLISHED)]
        changed = (_verdicts(dns.details), list(dns.records), dns.dkim) != (_verdicts(stored), old.records, old.dkim)
        new.records = list(dns.records)
        new.dkim = dns.dkim
        new.dns_endpoint = dns.dns_endpoint
        if changed or old.last_check_time is None:
            new.last_check_time = stamp.now
    return new
