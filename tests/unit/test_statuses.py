"""The pure status decisions, one row per line of the README's conditions table.

Each row gives the facts a writer has gathered and the conditions the object must then carry: the detail
condition the README names, and Ready / Stalled / Reconciling as kstatus reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from postmaster.api.mailprovider import MailProviderSpec, MailProviderStatus, ProbeStatus
from postmaster.api.restrictionpolicy import RestrictionPolicyStatus
from postmaster.api.sendingdomain import SendingDomainStatus
from postmaster.conditions import Stamp, find
from postmaster.resolution import SpecError, resolve_endpoint
from postmaster.statuses import (
    PROBE_DISABLED,
    DnsOutcome,
    ProbeInput,
    ProbeOutcome,
    ProviderFacts,
    ProviderStanding,
    mailprovider_status,
    restrictionpolicy_status,
    sendingdomain_status,
)

NOW = Stamp(3, "2026-12-03T10:00:00Z")
LATER = Stamp(3, "2026-12-03T11:00:00Z")
ENDPOINT = resolve_endpoint(
    MailProviderSpec.model_validate(
        {"preset": "sendgrid", "from": {"address": "a@example.com"}, "auth": {"credentialsSecretRef": {"name": "c"}}}
    )
)
FOUND = ProviderStanding("sendgrid", found=True)


def _facts(error: SpecError | None = None, *, credentials_needed: bool = True) -> ProviderFacts:
    return ProviderFacts(ENDPOINT, error, credentials_needed, "sendgrid-smtp", "sendgrid-relay", outputs_written=True)


def _probe(status: str, reason: str, *, needs_person: bool = False, transient: bool = False) -> ProbeOutcome:
    summary = ProbeStatus(outcome=reason, needs_person=needs_person, transient=transient)
    return ProbeOutcome(NOW.condition("SMTPReachable", status, reason, f"probe: {reason}"), summary)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Row:
    """What the README's row says: (condition type, status, reason) pairs that must hold."""

    expect: dict[str, tuple[str, str]]
    absent: tuple[str, ...] = field(default=())


def _check(conditions: list, row: Row) -> None:  # type: ignore[type-arg]
    got = {c.type: (c.status, c.reason) for c in conditions}
    for type_, wanted in row.expect.items():
        assert got.get(type_) == wanted, f"{type_}: {got.get(type_)} != {wanted} in {got}"
    for type_ in row.absent:
        assert type_ not in got


MAILPROVIDER_ROWS = [
    pytest.param(
        _facts(),
        _probe("True", "Succeeded"),
        Row(
            {
                "Ready": ("True", "Ready"),
                "Stalled": ("False", "Progressing"),
                "Reconciling": ("False", "Reconciled"),
                "CredentialsResolved": ("True", "CredentialsFound"),
                "SMTPReachable": ("True", "Succeeded"),
            }
        ),
        id="all Ready True / Stalled False / Reconciling False; CredentialsResolved CredentialsFound",
    ),
    pytest.param(
        _facts(credentials_needed=False),
        PROBE_DISABLED,
        Row({"Ready": ("True", "Ready"), "CredentialsResolved": ("True", "NoCredentialsNeeded")}, ("SMTPReachable",)),
        id="CredentialsResolved NoCredentialsNeeded; probe disabled drops SMTPReachable",
    ),
    pytest.param(
        _facts(SpecError("spec.region", "preset ses needs a region")),
        None,
        Row({"Ready": ("False", "InvalidSpec"), "Stalled": ("True", "InvalidSpec")}),
        id="all Stalled InvalidSpec",
    ),
    *[
        pytest.param(
            _facts(SpecError("spec.auth.credentialsSecretRef.name", "missing", reason)),
            None,
            Row(
                {
                    "CredentialsResolved": ("False", reason),
                    "Stalled": ("True", reason),
                    "Ready": ("False", reason),
                }
            ),
            id=f"CredentialsResolved False {reason}",
        )
        for reason in ("SecretNotFound", "SecretKeyNotFound", "InvalidCredentials", "CABundleNotFound")
    ],
    pytest.param(
        _facts(),
        None,
        Row(
            {
                "SMTPReachable": ("Unknown", "ProbePending"),
                "Reconciling": ("True", "ProbePending"),
                "Ready": ("Unknown", "ProbePending"),
            }
        ),
        id="SMTPReachable ProbePending",
    ),
    *[
        pytest.param(
            _facts(),
            _probe("Unknown", reason, transient=True),
            Row(
                {
                    "SMTPReachable": ("Unknown", reason),
                    "Reconciling": ("True", reason),
                    "Stalled": ("False", "Progressing"),
                    "Ready": ("Unknown", reason),
                }
            ),
            id=f"SMTPReachable transient {reason}",
        )
        for reason in (
            "ConnectionRefused",
            "ConnectionTimedOut",
            "ServerDisconnected",
            "RateLimited",
            "ServerTemporaryFailure",
            "TLSHandshakeFailed",
        )
    ],
    *[
        pytest.param(
            _facts(),
            _probe("False", reason, needs_person=True),
            Row({"SMTPReachable": ("False", reason), "Stalled": ("True", reason), "Ready": ("False", reason)}),
            id=f"SMTPReachable needs a person {reason}",
        )
        for reason in (
            "DNSResolutionFailed",
            "TLSMismatch",
            "TLSCertificateInvalid",
            "StartTLSRequired",
            "AuthenticationFailed",
            "BasicAuthDisabled",
            "AuthMechanismUnsupported",
            "AuthenticationRequired",
            "TokenExpired",
            "TokenRequestFailed",
            "SenderRejected",
        )
    ],
    pytest.param(
        _facts(),
        _probe("False", "RecipientRejected"),
        Row({"SMTPReachable": ("False", "RecipientRejected"), "Stalled": ("False", "Progressing")}),
        id="SMTPReachable RecipientRejected (not stalled)",
    ),
]


@pytest.mark.parametrize(("facts", "probe", "row"), MAILPROVIDER_ROWS)
def test_mailprovider_rows(facts: ProviderFacts, probe: ProbeInput, row: Row) -> None:
    status = mailprovider_status(facts, probe, MailProviderStatus(), NOW)
    _check(status.conditions, row)
    assert status.observed_generation == 3


def test_ready_waits_for_the_outputs() -> None:
    """The probe may finish before the outputs are written: Ready says so until they are."""
    probe_first = ProviderFacts(ENDPOINT, None, True, "sendgrid-smtp", "sendgrid-relay", outputs_written=False)
    status = mailprovider_status(probe_first, _probe("True", "Succeeded"), MailProviderStatus(), NOW)
    _check(status.conditions, Row({"Ready": ("Unknown", "Rendering"), "Reconciling": ("True", "Rendering")}))
    assert status.outputs is None
    rendered = mailprovider_status(_facts(), None, status, LATER)
    _check(rendered.conditions, Row({"Ready": ("True", "Ready"), "SMTPReachable": ("True", "Succeeded")}))
    assert rendered.outputs is not None


def test_mailprovider_keeps_what_the_other_writer_owns() -> None:
    """The outputs reconcile (probe None) keeps the probe's verdict; the probe keeps CredentialsResolved's time."""
    probed = mailprovider_status(
        _facts(), _probe("False", "AuthenticationFailed", needs_person=True), MailProviderStatus(), NOW
    )
    rendered = mailprovider_status(_facts(), None, probed, LATER)
    assert find(rendered.conditions, "SMTPReachable") == find(probed.conditions, "SMTPReachable")
    assert rendered.probe == probed.probe
    assert find(rendered.conditions, "Stalled").reason == "AuthenticationFailed"  # type: ignore[union-attr]
    assert rendered == probed  # nothing new: nothing to write


POLICY_ROWS = [
    pytest.param(
        FOUND,
        None,
        Row(
            {
                "Ready": ("True", "Ready"),
                "Rendered": ("True", "RenderedIntoRelay"),
                "ProviderResolved": ("True", "ProviderFound"),
            }
        ),
        id="Rendered RenderedIntoRelay",
    ),
    pytest.param(
        ProviderStanding("x", found=False),
        None,
        Row({"ProviderResolved": ("False", "ProviderNotFound"), "Rendered": ("False", "ProviderNotFound")}),
        id="ProviderNotFound",
    ),
    pytest.param(
        ProviderStanding("x", found=True, error=SpecError("spec.auth", "no", "SecretNotFound")),
        None,
        Row({"ProviderResolved": ("False", "ProviderNotReady"), "Rendered": ("False", "ProviderNotReady")}),
        id="ProviderNotReady",
    ),
    pytest.param(
        FOUND,
        SpecError("spec.send.exceptions[0]", "bad pattern"),
        Row(
            {
                "Rendered": ("False", "InvalidSpec"),
                "Stalled": ("True", "InvalidSpec"),
                "Ready": ("False", "InvalidSpec"),
            }
        ),
        id="Rendered InvalidSpec",
    ),
]


@pytest.mark.parametrize(("provider", "error", "row"), POLICY_ROWS)
def test_restrictionpolicy_rows(provider: ProviderStanding, error: SpecError | None, row: Row) -> None:
    status = restrictionpolicy_status(
        provider, error, RestrictionPolicyStatus(), NOW, name="p", relay_name="sendgrid-relay"
    )
    _check(status.conditions, row)
    assert status.relay_config_map == ("sendgrid-relay" if row.expect.get("Rendered", ("",))[0] == "True" else None)


def _dns(*details: tuple[str, str, str], published: tuple[str, str] | None = None) -> DnsOutcome:
    conds = [NOW.condition(t, s, r, f"{t}: {r}") for t, s, r in details]  # type: ignore[arg-type]
    if published:
        conds.append(NOW.condition("DNSPublished", published[0], published[1], "p"))  # type: ignore[arg-type]
    return DnsOutcome(tuple(conds), (), None)


ALL_READY = (("SPFReady", "True", "Ready"), ("DKIMReady", "True", "Published"), ("DMARCReady", "True", "Ready"))

DOMAIN_ROWS = [
    pytest.param(
        FOUND,
        _dns(*ALL_READY),
        Row({"Ready": ("True", "Ready"), "ProviderResolved": ("True", "ProviderFound")}),
        id="SendingDomain Ready",
    ),
    pytest.param(
        ProviderStanding("x", found=False),
        None,
        Row({"ProviderResolved": ("False", "ProviderNotFound"), "Ready": ("False", "ProviderNotFound")}),
        id="ProviderNotFound",
    ),
    pytest.param(
        ProviderStanding("x", found=True, error=SpecError("spec.region", "needs a region")),
        None,
        Row({"ProviderResolved": ("False", "ProviderNotReady")}),
        id="ProviderNotReady",
    ),
    *[
        pytest.param(
            FOUND,
            _dns(*[(t, "False", reason) if t == type_ else (t, s, r) for t, s, r in ALL_READY]),
            Row({type_: ("False", reason), "Ready": ("False", reason), "Stalled": ("False", "Progressing")}),
            id=f"{type_} {reason}",
        )
        for type_, reason in (
            ("SPFReady", "RecordMissing"),
            ("SPFReady", "TooManyDNSLookups"),
            ("SPFReady", "ProviderNotAuthorized"),
            ("DKIMReady", "KeyMismatch"),
            ("DKIMReady", "WeakKey"),
            ("DMARCReady", "PolicyTooWeak"),
            ("DMARCReady", "ReportDestinationNotAuthorized"),
        )
    ],
    *[
        pytest.param(
            FOUND,
            _dns(("SPFReady", "Unknown", reason), *ALL_READY[1:]),
            Row({"SPFReady": ("Unknown", reason), "Reconciling": ("True", reason), "Ready": ("Unknown", reason)}),
            id=f"DNS {reason}",
        )
        for reason in ("DNSTimeout", "DNSServerFailure")
    ],
    pytest.param(
        FOUND,
        None,
        Row({"SPFReady": ("Unknown", "DNSCheckPending"), "Reconciling": ("True", "DNSCheckPending")}),
        id="DNSCheckPending",
    ),
    pytest.param(
        FOUND,
        _dns(*ALL_READY, published=("True", "DNSEndpointWritten")),
        Row({"DNSPublished": ("True", "DNSEndpointWritten"), "Ready": ("True", "Ready")}),
        id="DNSPublished DNSEndpointWritten",
    ),
    pytest.param(
        FOUND,
        _dns(*ALL_READY, published=("False", "ExternalDNSNotInstalled")),
        Row({"DNSPublished": ("False", "ExternalDNSNotInstalled"), "Ready": ("False", "ExternalDNSNotInstalled")}),
        id="DNSPublished ExternalDNSNotInstalled",
    ),
]


@pytest.mark.parametrize(("provider", "dns", "row"), DOMAIN_ROWS)
def test_sendingdomain_rows(provider: ProviderStanding, dns: DnsOutcome | None, row: Row) -> None:
    status = sendingdomain_status(provider, None, dns, SendingDomainStatus(), NOW)
    _check(status.conditions, row)


def test_sendingdomain_invalid_spec_stalls() -> None:
    status = sendingdomain_status(FOUND, SpecError("spec.domain", "bad"), None, SendingDomainStatus(), NOW)
    _check(status.conditions, Row({"Stalled": ("True", "InvalidSpec"), "Ready": ("False", "InvalidSpec")}))
    assert find(status.conditions, "Reconciling").status == "False"  # type: ignore[union-attr]


def test_sendingdomain_restart_keeps_the_stored_verdict() -> None:
    """After a restart no check has finished yet: the stored DNS verdicts stand, and nothing is rewritten."""
    checked = sendingdomain_status(FOUND, None, _dns(*ALL_READY), SendingDomainStatus(), NOW)
    restarted = sendingdomain_status(FOUND, None, None, checked, LATER)
    assert restarted == checked
    again = sendingdomain_status(FOUND, None, _dns(*ALL_READY), checked, LATER)
    assert again == checked  # the same outcome: lastCheckTime stays, nothing to write
    assert again.last_check_time == NOW.now
