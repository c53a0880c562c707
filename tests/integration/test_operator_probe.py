"""The operator probes MailProviders against real SMTP servers and reports the verdict in status.

The aiosmtpd servers (tests/fixtures/smtp.py) run in the test session's event loop, so these tests are
async and hand every blocking Kubernetes call to a thread; the operator runs in its own thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.fixtures.operator import Cluster, OperatorHandle
from tests.fixtures.smtp import PASSWORD, USER, SmtpServer, TokenEndpoint

pytestmark = pytest.mark.integration
MP = "mailproviders"
T = TypeVar("T")


async def until(check: Callable[[], T], *, within: float = 20, what: str = "condition") -> T:
    """Poll a blocking `check` in a thread until it returns something truthy."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last value: {last!r}")


def condition(ns: Cluster, name: str, type_: str, status: str, reason: str | None = None) -> Callable[[], Any]:
    def check() -> dict[str, Any] | None:
        c = ns.condition(MP, name, type_)
        return c if c and c["status"] == status and (reason is None or c["reason"] == reason) else None

    return check


def provider(server: SmtpServer, *, secret: str = "creds", **extra: Any) -> dict[str, Any]:  # noqa: S107
    spec: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "starttls",
        "caBundleRef": {"name": "test-ca"},
        "from": {"address": USER},
        "auth": {"credentialsSecretRef": {"name": secret}, "method": "plain"},
        "probe": {"timeout": "3s"},
    }
    spec.update(extra)
    return spec


async def setup(ns: Cluster, operator: OperatorHandle, server: SmtpServer, password: str = PASSWORD) -> None:
    operator.remember_secret(password)
    await asyncio.to_thread(ns.apply_secret, "creds", {"username": USER, "password": password})
    body = {"metadata": {"name": "test-ca"}, "data": {"ca.crt": server.ca_pem}}
    await asyncio.to_thread(ns.core.create_namespaced_config_map, ns.ns, body)


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorHandle) -> Cluster:
    return cluster


async def test_healthy_server_makes_the_provider_ready(
    ns: Cluster, operator: OperatorHandle, submission_server: SmtpServer
) -> None:
    await setup(ns, operator, submission_server)
    assert submission_server.handler is not None
    delivered_before = len(submission_server.handler.messages)  # the server is shared with other tests
    await asyncio.to_thread(ns.create, MP, "local", provider(submission_server))
    ready = await until(condition(ns, "local", "Ready", "True"), what="Ready")
    assert "the SMTP probe passed" in ready["message"]
    smtp = await asyncio.to_thread(ns.condition, MP, "local", "SMTPReachable")
    assert smtp is not None
    assert smtp["reason"] == "Succeeded"
    probe = (await asyncio.to_thread(ns.get, MP, "local"))["status"]["probe"]
    names = [s["name"] for s in probe["stages"]]
    for stage in ("resolve", "connect", "banner", "ehlo", "starttls", "tls", "ehlo-after-tls", "auth", "mail"):
        assert stage in names, names
    assert probe["banner"].startswith("220")
    assert probe["tls"]["version"].startswith("TLS")
    assert probe["tls"]["hostnameMatched"] is True
    assert probe["tls"]["chainVerified"] is True
    assert probe["tls"]["daysLeft"] > 0
    assert any(e.startswith("AUTH") for e in probe["extensions"])
    assert "STARTTLS" in probe["extensionsBeforeTls"]
    assert len(submission_server.handler.messages) == delivered_before  # the probe sends nothing
    relay = await asyncio.to_thread(ns.configmap, "local-relay")
    assert relay is not None
    assert relay["ca.crt"].strip() == submission_server.ca_pem.strip()  # the relay trusts the same CA
    assert "smtp_tls_CAfile = /etc/postfix/postmaster/ca.crt" in relay["main.cf"]


async def test_rejected_password_stalls_and_a_fixed_secret_recovers(
    ns: Cluster, operator: OperatorHandle, submission_server: SmtpServer
) -> None:
    wrong = "definitely-wrong-password-31"
    await setup(ns, operator, submission_server, password=wrong)
    await asyncio.to_thread(ns.create, MP, "local", provider(submission_server))
    failed = await until(condition(ns, "local", "SMTPReachable", "False", "AuthenticationFailed"), what="auth failure")
    assert "535" in failed["message"] or "password" in failed["message"].lower()
    stalled = await asyncio.to_thread(ns.condition, MP, "local", "Stalled")
    assert stalled is not None
    assert (stalled["status"], stalled["reason"]) == ("True", "AuthenticationFailed")
    ready = await asyncio.to_thread(ns.condition, MP, "local", "Ready")
    assert ready is not None
    assert ready["status"] == "False"

    await asyncio.to_thread(ns.apply_secret, "creds", {"username": USER, "password": PASSWORD})
    await until(condition(ns, "local", "Ready", "True"), what="recovery after the Secret was fixed")
    reasons = {e.reason for e in await asyncio.to_thread(ns.events)}
    assert {"AuthenticationFailed", "Ready"} <= reasons


async def test_rate_limit_is_transient_unknown_with_the_providers_limit(
    ns: Cluster, operator: OperatorHandle, throttling_server: SmtpServer
) -> None:
    await setup(ns, operator, throttling_server)
    spec = provider(throttling_server, rateLimit={"messages": 30, "per": "1m"})
    await asyncio.to_thread(ns.create, MP, "busy", spec)
    limited = await until(condition(ns, "busy", "SMTPReachable", "Unknown", "RateLimited"), what="RateLimited")
    assert "4.4.2" in limited["message"] or "rate" in limited["message"].lower()
    reconciling = await asyncio.to_thread(ns.condition, MP, "busy", "Reconciling")
    assert reconciling is not None
    assert reconciling["status"] == "True"
    stalled = await asyncio.to_thread(ns.condition, MP, "busy", "Stalled")
    assert stalled is not None
    assert stalled["status"] == "False"


async def test_implicit_tls_spoken_to_a_starttls_port_is_a_tls_mismatch(
    ns: Cluster, operator: OperatorHandle, submission_server: SmtpServer
) -> None:
    await setup(ns, operator, submission_server)
    await asyncio.to_thread(ns.create, MP, "mixed", provider(submission_server, tls="implicit"))
    mismatch = await until(condition(ns, "mixed", "SMTPReachable", "False", "TLSMismatch"), what="TLSMismatch")
    assert "587" in mismatch["message"]
    assert "465" in mismatch["message"]


async def test_tarpit_times_out_as_unknown(ns: Cluster, operator: OperatorHandle, tarpit_server: SmtpServer) -> None:
    await setup(ns, operator, tarpit_server)
    await asyncio.to_thread(ns.create, MP, "slow", provider(tarpit_server, probe={"timeout": "1s"}))
    await until(condition(ns, "slow", "SMTPReachable", "Unknown"), what="timeout → Unknown")


async def test_xoauth2_client_credentials(
    ns: Cluster, operator: OperatorHandle, submission_server: SmtpServer, token_endpoint: TokenEndpoint
) -> None:
    from tests.fixtures.smtp import CLIENT_ID, CLIENT_SECRET

    await setup(ns, operator, submission_server)
    operator.remember_secret(CLIENT_SECRET)
    await asyncio.to_thread(ns.apply_secret, "oauth", {"client-secret": CLIENT_SECRET})
    spec = provider(submission_server)
    spec["auth"] = {
        "method": "xoauth2",
        "username": USER,
        "oauth2": {
            "clientCredentials": {
                "tokenURL": token_endpoint.url,
                "clientId": CLIENT_ID,
                "clientSecretRef": {"name": "oauth", "key": "client-secret"},
                "scope": "https://outlook.office365.com/.default",
            }
        },
    }
    await asyncio.to_thread(ns.create, MP, "oauth", spec)
    await until(condition(ns, "oauth", "Ready", "True"), what="XOAUTH2 probe")
    assert token_endpoint.requests >= 1
    assert "https://outlook.office365.com/.default" in token_endpoint.seen_scopes
    for token in token_endpoint.issued:
        operator.remember_secret(token)


async def test_test_email_is_sent_once_then_throttled(
    ns: Cluster, operator: OperatorHandle, submission_server: SmtpServer
) -> None:
    await setup(ns, operator, submission_server)
    await asyncio.to_thread(ns.create, MP, "mailer", provider(submission_server))
    await until(condition(ns, "mailer", "Ready", "True"), what="Ready")
    handler = submission_server.handler
    assert handler is not None
    before = len(handler.messages)

    def annotate(value: str) -> None:
        body = {"metadata": {"annotations": {"postmaster.dev/send-test-to": value}}}
        ns.custom.patch_namespaced_custom_object("postmaster.dev", "v1alpha1", ns.ns, MP, "mailer", body)

    def test_email(request: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = (ns.get(MP, "mailer").get("status") or {}).get("testEmail")
        return record if record and record.get("request") == request else None

    await asyncio.to_thread(annotate, "ops@example.com")
    sent = await until(lambda: test_email("ops@example.com"), what="test email handled")
    assert sent["outcome"] == "Sent", sent
    assert sent["accepted"] is True
    assert sent.get("queueId")
    assert len(handler.messages) == before + 1
    assert b"Postmaster test message" in handler.messages[-1]

    await asyncio.to_thread(annotate, "ops@example.com again")
    throttled = await until(lambda: test_email("ops@example.com again"), what="second request handled")
    assert throttled["outcome"] == "Throttled"
    assert throttled["accepted"] is False
    assert throttled["nextAllowedTime"] == sent["nextAllowedTime"]
    assert "next will be accepted after" in throttled["message"]
    assert len(handler.messages) == before + 1
    reasons = {e.reason for e in await asyncio.to_thread(ns.events)}
    assert {"TestEmailSent", "TestEmailNotSent"} <= reasons


async def test_probe_now_annotation_reprobes(
    ns: Cluster, operator: OperatorHandle, submission_server: SmtpServer
) -> None:
    await setup(ns, operator, submission_server)
    await asyncio.to_thread(ns.create, MP, "again", provider(submission_server))
    await until(condition(ns, "again", "Ready", "True"), what="Ready")

    def annotate() -> None:
        body = {"metadata": {"annotations": {"postmaster.dev/probe-now": "2026-11-21T12:00:00Z"}}}
        ns.custom.patch_namespaced_custom_object("postmaster.dev", "v1alpha1", ns.ns, MP, "again", body)

    await asyncio.to_thread(annotate)
    record = await until(
        lambda: (ns.get(MP, "again").get("status") or {}).get("probeRequest"), what="probe request handled"
    )
    assert record["accepted"] is True
    assert record["outcome"] == "Probing"


async def test_every_failure_kind_reaches_status_with_its_fix(
    ns: Cluster,
    operator: OperatorHandle,
    submission_server: SmtpServer,
    smtps_server: SmtpServer,
    tenant_server: SmtpServer,
    basic_auth_disabled_server: SmtpServer,
    expired_cert_server: SmtpServer,
    wrong_host_cert_server: SmtpServer,
    untrusted_cert_server: SmtpServer,
    hangup_server: SmtpServer,
    closed_port: int,
    backlog_port: int,
) -> None:
    """One MailProvider per failure the seeds describe, each against a real server that produces it.

    Expected: (condition status, reason, a word of the fix that must be in the message).
    """
    await setup(ns, operator, submission_server)
    cases: dict[str, tuple[dict[str, Any], tuple[str, str, str]]] = {
        "tenant": (provider(tenant_server), ("False", "SenderRejected", "5.7.64")),
        "basic-auth": (provider(basic_auth_disabled_server), ("False", "BasicAuthDisabled", "OAuth2")),
        "expired": (provider(expired_cert_server), ("False", "TLSCertificateInvalid", "expired")),
        "wrong-host": (provider(wrong_host_cert_server, tls="implicit"), ("False", "TLSCertificateInvalid", "name")),
        "untrusted": (provider(untrusted_cert_server), ("False", "TLSCertificateInvalid", "trust")),
        "needs-starttls": (provider(submission_server, tls="none"), ("False", "StartTLSRequired", "starttls")),
        "starttls-on-465": (provider(smtps_server, tls="starttls"), ("False", "TLSMismatch", "465")),
        "recipient": (
            provider(submission_server, probe={"timeout": "3s", "rcptTo": "nobody@nowhere.test"}),
            ("False", "RecipientRejected", "nobody@nowhere.test"),
        ),
        "hangup": (provider(hangup_server), ("Unknown", "ServerDisconnected", "")),
        "refused": (
            {**provider(submission_server), "port": closed_port},
            ("Unknown", "ConnectionRefused", str(closed_port)),
        ),
        "firewalled": (
            {**provider(submission_server), "port": backlog_port, "probe": {"timeout": "1s"}},
            ("Unknown", "ConnectionTimedOut", ""),
        ),
        "no-such-host": (
            {**provider(submission_server), "host": "smtp.does-not-exist.invalid"},
            ("False", "DNSResolutionFailed", "smtp.does-not-exist.invalid"),
        ),
    }
    for name, (spec, _) in cases.items():
        await asyncio.to_thread(ns.create, MP, name, spec)
    for name, (_, (status, reason, fix)) in cases.items():
        got = await until(condition(ns, name, "SMTPReachable", status, reason), within=30, what=f"{name}: {reason}")
        assert fix.lower() in got["message"].lower(), (name, got["message"])
        ready = await asyncio.to_thread(ns.condition, MP, name, "Ready")
        assert ready is not None
        assert ready["status"] != "True", name
