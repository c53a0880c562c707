"""The staged SMTP probe against real servers on loopback, and the condition each outcome becomes.

Every reason the classifier knows is produced here by a server that really behaves that way.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import time
from typing import Any

import pytest

from postmaster.checks.smtp import (
    AuthMethod,
    FailureKind,
    ProbeConfig,
    ProbeHints,
    ProbeResult,
    Reason,
    Secret,
    StageName,
    Timeouts,
    TlsMode,
    classify,
    dns_resolver,
    lookup_resolver,
    probe,
)
from tests.fixtures.smtp import HOST, PASSWORD, SERVER_NAME, USER, SmtpServer

FAST = Timeouts(connect=2, greeting=2, tls=2, command=2, total=15)
SHORT = Timeouts(connect=0.5, greeting=0.5, tls=0.5, command=0.5, total=5)


def config(server: SmtpServer, **overrides: Any) -> ProbeConfig:
    values: dict[str, Any] = {
        "host": HOST,
        "port": server.port,
        "tls": TlsMode.STARTTLS,
        "ca_bundle_pem": server.ca_pem,
        "auth": AuthMethod.PLAIN,
        "username": USER,
        "password": Secret(PASSWORD),
        "mail_from": USER,
        "timeouts": FAST,
    }
    values.update(overrides)
    return ProbeConfig(**values)


def names(result: ProbeResult) -> list[str]:
    return [s.name.value for s in result.stages]


# -- success ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [AuthMethod.PLAIN, AuthMethod.LOGIN, AuthMethod.CRAM_MD5])
async def test_starttls_session_succeeds_with_each_password_mechanism(
    submission_server: SmtpServer, method: AuthMethod
) -> None:
    result = await probe(config(submission_server, auth=method, rcpt_to="bob@example.net"))

    assert result.ok, result.failure
    assert names(result) == [
        "resolve", "connect", "banner", "ehlo", "starttls", "tls", "ehlo-after-tls",
        "auth", "mail", "rcpt", "rset", "quit",
    ]  # fmt: skip
    assert all(s.ok and s.duration_ms >= 0 for s in result.stages)
    assert result.banner is not None
    assert result.banner.code == 220
    assert result.auth_mechanism == method.sasl_name
    auth = result.stage(StageName.AUTH)
    assert auth is not None
    assert auth.reply is not None
    assert auth.reply.code == 235
    assert auth.command == f"AUTH {method.sasl_name} <hidden>"
    mail = result.stage(StageName.MAIL)
    assert mail is not None
    assert mail.command == f"MAIL FROM:<{USER}>"
    assert mail.reply is not None
    assert (mail.reply.code, mail.reply.enhanced) == (250, "2.1.0")
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.transient, verdict.needs_person) == (
        Reason.SUCCEEDED, "True", False, False,
    )  # fmt: skip


async def test_extensions_before_and_after_tls(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server))

    assert result.ehlo is not None
    assert result.ehlo_after_tls is not None
    assert result.ehlo.starttls
    assert not result.ehlo.auth_mechanisms
    assert not result.ehlo_after_tls.starttls
    assert {"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"} <= set(result.ehlo_after_tls.auth_mechanisms)
    assert result.ehlo_after_tls.size is not None
    assert result.ehlo_after_tls.size > 0
    assert result.ehlo_after_tls.eightbitmime


async def test_tls_facts_of_a_verified_session(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server))

    tls = result.tls
    assert tls is not None
    assert tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.cipher
    assert tls.cipher_bits
    assert (tls.verify, tls.trust, tls.hostname_matched, tls.chain_verified) == (True, "ca-bundle", True, True)
    cert = tls.certificate
    assert cert is not None
    assert f"DNS:{SERVER_NAME}" in cert.sans
    assert f"IP:{HOST}" in cert.sans
    assert "Postmaster Test CA" in cert.issuer
    assert not cert.expired
    assert cert.days_left > 300
    assert len(cert.sha256) == 64


async def test_summary_for_a_status(submission_server: SmtpServer, throttling_server: SmtpServer) -> None:
    good = (await probe(config(submission_server))).summary()
    throttled = (await probe(config(throttling_server))).summary()

    assert good["tlsVersion"] == "TLSv1.3"
    assert good["certificateDaysLeft"] > 300
    assert "PLAIN" in good["authMechanisms"]
    assert "failedStage" not in good
    assert (throttled["failedStage"], throttled["reply"][:9]) == ("mail", "421 4.4.2")
    assert json.dumps(good)  # plain JSON types only


async def test_implicit_tls_session_succeeds(smtps_server: SmtpServer) -> None:
    result = await probe(config(smtps_server, tls=TlsMode.IMPLICIT, rcpt_to="bob@example.net"))

    assert result.ok, result.failure
    assert names(result) == ["resolve", "connect", "tls", "banner", "ehlo", "auth", "mail", "rcpt", "rset", "quit"]
    assert result.tls is not None
    assert result.tls.chain_verified
    assert result.ehlo is not None
    assert "PLAIN" in result.ehlo.auth_mechanisms
    assert classify(result).reason is Reason.SUCCEEDED


async def test_no_tls_no_auth_session_succeeds(plain_server: SmtpServer) -> None:
    result = await probe(config(plain_server, tls=TlsMode.NONE, auth=AuthMethod.NONE, username=None, password=None))

    assert result.ok, result.failure
    assert result.tls is None
    assert result.username is None
    assert "starttls" not in names(result)
    assert "auth" not in names(result)


async def test_host_name_resolved_through_real_dns(nsd: Any, submission_server: SmtpServer) -> None:
    nsd.zone("probe.test", f"smtp A {HOST}")
    resolver = dns_resolver([nsd.address], port=nsd.port)

    result = await probe(config(submission_server, host=SERVER_NAME), resolver=resolver)

    assert result.ok, result.failure
    assert result.addresses == [HOST]
    assert result.tls is not None
    assert result.tls.hostname == SERVER_NAME
    assert result.tls.hostname_matched


async def test_host_name_through_the_shared_dns_layer(nsd: Any, submission_server: SmtpServer) -> None:
    from postmaster.checks.dns import DnsCache, DnsResolver

    nsd.zone("probe.test", f"smtp A {HOST}")
    shared = DnsResolver([nsd.nameserver], cache=DnsCache(), timeout=1.0, lifetime=3.0, attempts=1)

    good = await probe(config(submission_server, host=SERVER_NAME), resolver=lookup_resolver(shared))
    typo = await probe(config(submission_server, host="smpt.probe.test"), resolver=lookup_resolver(shared))

    assert good.ok, good.failure
    assert typo.failure is not None
    assert typo.failure.kind is FailureKind.DNS_NOT_FOUND


async def test_localhost_through_the_system_resolver(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server, host="localhost"))

    assert result.ok, result.failure
    assert HOST in result.addresses or "::1" in result.addresses


# -- DNS and TCP --------------------------------------------------------------------------------------------------


async def test_name_that_does_not_exist(nsd: Any, submission_server: SmtpServer) -> None:
    nsd.zone("probe.test", f"smtp A {HOST}")
    resolver = dns_resolver([nsd.address], port=nsd.port)

    result = await probe(config(submission_server, host="smpt.probe.test"), resolver=resolver)

    assert result.failure is not None
    assert result.failure.kind is FailureKind.DNS_NOT_FOUND
    assert names(result) == ["resolve"]
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.DNS_RESOLUTION_FAILED, "False", True)
    assert "smpt.probe.test" in verdict.message
    assert "typo" in verdict.message


async def test_dns_server_failure_is_transient(servfail_server: Any, submission_server: SmtpServer) -> None:
    resolver = dns_resolver([servfail_server.address], port=servfail_server.port)

    result = await probe(config(submission_server, host=SERVER_NAME), resolver=resolver)

    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.transient) == (Reason.DNS_RESOLUTION_FAILED, "Unknown", True)


async def test_connection_refused(closed_port: int, pki: Any) -> None:
    server = SmtpServer(name="closed", port=closed_port, ca_pem=pki.ca_pem)

    result = await probe(config(server))

    assert result.failure is not None
    assert result.failure.kind is FailureKind.CONNECT_REFUSED
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.transient) == (Reason.CONNECTION_REFUSED, "Unknown", True)
    assert "587" in verdict.message
    assert "465" in verdict.message


async def test_connection_timed_out(backlog_port: int, pki: Any) -> None:
    server = SmtpServer(name="backlog", port=backlog_port, ca_pem=pki.ca_pem)
    started = time.monotonic()

    result = await probe(config(server, timeouts=SHORT))

    assert time.monotonic() - started < 3
    assert result.failure is not None
    assert (result.failure.stage, result.failure.kind) == (StageName.CONNECT, FailureKind.CONNECT_TIMEOUT)
    verdict = classify(result, ProbeHints(connection="SendGrid also listens on port 2525."))
    assert (verdict.reason, verdict.status) == (Reason.CONNECTION_TIMED_OUT, "Unknown")
    assert verdict.message.endswith("SendGrid also listens on port 2525.")


async def test_tarpit_that_never_greets(tarpit_server: SmtpServer) -> None:
    started = time.monotonic()

    result = await probe(config(tarpit_server, timeouts=SHORT))

    assert time.monotonic() - started < 3
    assert result.failure is not None
    assert (result.failure.stage, result.failure.kind) == (StageName.BANNER, FailureKind.TIMEOUT)
    assert result.implicit_tls_detected is False  # it does not answer a TLS ClientHello either
    assert names(result)[-2:] == ["banner", "tls-sniff"]
    verdict = classify(result)
    assert (verdict.reason, verdict.status) == (Reason.CONNECTION_TIMED_OUT, "Unknown")
    assert "no greeting" in verdict.message


async def test_server_that_hangs_up_at_once(hangup_server: SmtpServer) -> None:
    result = await probe(config(hangup_server))

    assert result.failure is not None
    assert (result.failure.stage, result.failure.kind) == (StageName.BANNER, FailureKind.DISCONNECTED)
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.transient) == (Reason.SERVER_DISCONNECTED, "Unknown", True)


async def test_server_that_drops_the_connection_during_the_tls_handshake(tls_dropping_server: SmtpServer) -> None:
    result = await probe(config(tls_dropping_server))

    assert result.failure is not None
    assert (result.failure.stage, result.failure.kind) == (StageName.TLS, FailureKind.DISCONNECTED)
    assert names(result)[-2:] == ["starttls", "tls"]
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.stage) == (Reason.SERVER_DISCONNECTED, "Unknown", "tls")


# -- TLS ----------------------------------------------------------------------------------------------------------


async def test_implicit_tls_spoken_to_a_starttls_port(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server, tls=TlsMode.IMPLICIT))

    assert result.failure is not None
    assert (result.failure.stage, result.failure.kind) == (StageName.TLS, FailureKind.NOT_TLS)
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.TLS_MISMATCH, "False", True)
    assert "Port 587 typically requires STARTTLS, port 465 requires SSL" in verdict.message
    assert "tls: starttls" in verdict.message


async def test_starttls_spoken_to_an_implicit_tls_port(smtps_server: SmtpServer) -> None:
    result = await probe(config(smtps_server, timeouts=SHORT))

    assert result.failure is not None
    assert result.failure.stage is StageName.BANNER
    assert result.implicit_tls_detected is True
    verdict = classify(result)
    assert (verdict.reason, verdict.status) == (Reason.TLS_MISMATCH, "False")
    assert "tls: implicit" in verdict.message


async def test_starttls_asked_of_a_server_without_it(plain_server: SmtpServer) -> None:
    result = await probe(config(plain_server, auth=AuthMethod.NONE, username=None, password=None))

    assert result.failure is not None
    assert result.failure.kind is FailureKind.STARTTLS_UNAVAILABLE
    verdict = classify(result, ProbeHints(tls="Mailgun accepts STARTTLS on 587 and implicit TLS on 465."))
    assert (verdict.reason, verdict.status) == (Reason.TLS_MISMATCH, "False")
    assert "does not offer STARTTLS" in verdict.message
    assert "Mailgun" in verdict.message


async def test_expired_certificate(expired_cert_server: SmtpServer) -> None:
    result = await probe(config(expired_cert_server))

    assert result.failure is not None
    assert (result.failure.stage, result.failure.kind) == (StageName.TLS, FailureKind.TLS_CERTIFICATE)
    tls = result.tls
    assert tls is not None
    assert tls.certificate is not None
    assert tls.certificate.expired
    assert tls.certificate.days_left < 0
    assert tls.verify_error == "certificate has expired"
    assert tls.hostname_matched is True
    assert tls.chain_verified is False
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.TLS_CERTIFICATE_INVALID, "False", True)
    assert f"expired on {tls.certificate.not_after:%Y-%m-%d}" in verdict.message
    assert "not " + HOST not in verdict.message  # the name is right, only the date is wrong


async def test_certificate_for_another_host(wrong_host_cert_server: SmtpServer) -> None:
    result = await probe(config(wrong_host_cert_server, tls=TlsMode.IMPLICIT))

    assert result.failure is not None
    assert result.failure.kind is FailureKind.TLS_CERTIFICATE
    tls = result.tls
    assert tls is not None
    assert tls.certificate is not None
    assert tls.hostname_matched is False
    assert not tls.certificate.expired
    assert tls.certificate.sans == ["DNS:mail.other.example"]
    verdict = classify(result)
    assert verdict.reason is Reason.TLS_CERTIFICATE_INVALID
    assert f"it is for mail.other.example, not {HOST}" in verdict.message
    assert "expired" not in verdict.message


async def test_certificate_from_an_untrusted_ca(untrusted_cert_server: SmtpServer) -> None:
    result = await probe(config(untrusted_cert_server))

    tls = result.tls
    assert tls is not None
    assert tls.certificate is not None
    assert tls.chain_verified is False
    assert tls.hostname_matched is True
    assert "Somebody Else" in tls.certificate.issuer
    verdict = classify(result)
    assert verdict.reason is Reason.TLS_CERTIFICATE_INVALID
    assert "not a trusted certificate authority" in verdict.message
    assert "CA bundle" in verdict.message


async def test_private_ca_not_trusted_without_the_bundle(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server, ca_bundle_pem=None))

    assert result.tls is not None
    assert result.tls.trust == "system"
    assert classify(result).reason is Reason.TLS_CERTIFICATE_INVALID


async def test_verification_off_still_reports_the_certificate(expired_cert_server: SmtpServer) -> None:
    result = await probe(config(expired_cert_server, tls_verify=False, ca_bundle_pem=None))

    assert result.ok, result.failure
    tls = result.tls
    assert tls is not None
    assert tls.certificate is not None
    assert tls.certificate.expired
    assert (tls.trust, tls.chain_verified, tls.hostname_matched) == ("none", None, True)
    verdict = classify(result)
    assert verdict.reason is Reason.SUCCEEDED
    assert any("tlsVerify is off" in w for w in verdict.warnings)


async def test_certificate_expiring_soon_is_a_warning(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server))
    assert result.tls is not None
    assert result.tls.certificate is not None
    later = result.tls.certificate.not_after - datetime.timedelta(days=5)

    verdict = classify(result, now=later)

    assert verdict.reason is Reason.SUCCEEDED
    assert any("expires in 5 days" in w for w in verdict.warnings)


async def test_starttls_required_before_mail(submission_server: SmtpServer) -> None:
    result = await probe(
        config(submission_server, tls=TlsMode.NONE, auth=AuthMethod.NONE, username=None, password=None)
    )

    assert result.failure is not None
    assert result.failure.stage is StageName.MAIL
    assert result.failure.reply is not None
    assert (result.failure.reply.code, result.failure.reply.enhanced) == (530, "5.7.0")
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.STARTTLS_REQUIRED, "False", True)
    assert "tls: starttls" in verdict.message


async def test_starttls_required_before_auth(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server, tls=TlsMode.NONE))

    assert result.failure is not None
    assert result.failure.kind is FailureKind.AUTH_UNAVAILABLE
    verdict = classify(result)
    assert verdict.reason is Reason.STARTTLS_REQUIRED
    assert "only after STARTTLS" in verdict.message
    assert any("unencrypted" in w for w in verdict.warnings)


# -- AUTH ---------------------------------------------------------------------------------------------------------


async def test_wrong_password(submission_server: SmtpServer) -> None:
    hints = ProbeHints(auth="Gmail needs an app password with 2-Step Verification.")

    result = await probe(config(submission_server, password=Secret("not-the-password")))

    assert result.failure is not None
    assert result.failure.stage is StageName.AUTH
    assert result.failure.reply is not None
    assert result.failure.reply.code == 535
    assert "mail" not in names(result)
    verdict = classify(result, hints)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.AUTHENTICATION_FAILED, "False", True)
    assert USER in verdict.message
    assert "535 5.7.8" in verdict.message
    assert verdict.message.endswith("Gmail needs an app password with 2-Step Verification.")


async def test_basic_auth_disabled(basic_auth_disabled_server: SmtpServer) -> None:
    result = await probe(config(basic_auth_disabled_server, auth=AuthMethod.LOGIN))

    assert result.failure is not None
    assert result.failure.reply is not None
    assert result.failure.reply.enhanced == "5.7.139"
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.BASIC_AUTH_DISABLED, "False", True)
    assert "xoauth2" in verdict.message
    assert "app password" in verdict.message
    assert "SmtpClientAuthenticationDisabled" in verdict.message


async def test_mechanism_the_server_does_not_offer(plain_server: SmtpServer) -> None:
    result = await probe(config(plain_server, tls=TlsMode.NONE, auth=AuthMethod.CRAM_MD5))

    assert result.failure is not None
    assert result.failure.kind is FailureKind.AUTH_UNAVAILABLE
    verdict = classify(result)
    assert (verdict.reason, verdict.status) == (Reason.AUTH_MECHANISM_UNSUPPORTED, "False")
    assert "offers no SMTP AUTH" in verdict.message


# -- envelope -----------------------------------------------------------------------------------------------------


async def test_exchange_rate_limit(throttling_server: SmtpServer) -> None:
    hints = ProbeHints(rate_limit="Microsoft 365 allows 30 messages per minute; set rateLimit to 30 per 1m.")

    result = await probe(config(throttling_server))

    assert result.failure is not None
    assert result.failure.stage is StageName.MAIL
    assert result.failure.reply is not None
    assert (result.failure.reply.code, result.failure.reply.enhanced) == (421, "4.4.2")
    verdict = classify(result, hints)
    assert (verdict.reason, verdict.status, verdict.transient) == (Reason.RATE_LIMITED, "Unknown", True)
    assert "Message submission rate for this client has exceeded the configured limit" in verdict.message
    assert "30 messages per minute" in verdict.message


async def test_tenant_attribution_relay_denied(tenant_server: SmtpServer) -> None:
    result = await probe(config(tenant_server))

    assert result.failure is not None
    assert result.failure.reply is not None
    assert result.failure.reply.enhanced == "5.7.64"
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.SENDER_REJECTED, "False", True)
    assert "TenantAttribution" in verdict.message
    assert "connector" in verdict.message


async def test_recipient_rejected(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server, rcpt_to="nobody@nowhere.test"))

    assert result.failure is not None
    assert result.failure.stage is StageName.RCPT
    verdict = classify(result)
    assert (verdict.reason, verdict.status) == (Reason.RECIPIENT_REJECTED, "False")
    assert "nobody@nowhere.test" in verdict.message
    assert "User unknown" in verdict.message


async def test_a_probe_without_sender_stops_after_auth(submission_server: SmtpServer) -> None:
    result = await probe(config(submission_server, mail_from=None))

    assert result.ok
    assert names(result)[-3:] == ["auth", "rset", "quit"]


# -- timeouts and concurrency -------------------------------------------------------------------------------------


async def test_total_deadline_bounds_the_whole_probe(tarpit_server: SmtpServer) -> None:
    timeouts = Timeouts(connect=5, greeting=5, tls=5, command=5, total=0.4)
    started = time.monotonic()

    result = await probe(config(tarpit_server, timeouts=timeouts))

    assert time.monotonic() - started < 1.5
    assert result.failure is not None
    assert result.failure.kind is FailureKind.TIMEOUT
    assert "total time limit" in result.failure.detail
    assert classify(result).reason is Reason.CONNECTION_TIMED_OUT


async def test_a_tarpit_does_not_hold_up_other_probes(tarpit_server: SmtpServer, submission_server: SmtpServer) -> None:
    limiter = asyncio.Semaphore(4)
    slow = Timeouts(connect=2, greeting=1.5, tls=0.3, command=2, total=10)
    solo = await probe(config(submission_server))

    tarpit_probes = [
        asyncio.create_task(probe(config(tarpit_server, timeouts=slow), limiter=limiter)) for _ in range(2)
    ]
    await asyncio.sleep(0.05)  # the tarpit probes hold their slots and wait for a greeting
    started = time.monotonic()
    healthy = await asyncio.gather(*(probe(config(submission_server), limiter=limiter) for _ in range(6)))
    healthy_elapsed = time.monotonic() - started
    stuck = await asyncio.gather(*tarpit_probes)

    assert all(r.ok for r in healthy)
    assert healthy_elapsed < 1.0, (healthy_elapsed, solo.duration_ms)
    assert all(r.failure is not None and r.failure.stage is StageName.BANNER for r in stuck)
    assert all(r.duration_ms >= 1450 for r in stuck)  # they did wait out their own greeting timeout


async def test_the_limiter_bounds_concurrency(submission_server: SmtpServer) -> None:
    limiter = asyncio.Semaphore(1)

    results = await asyncio.gather(*(probe(config(submission_server), limiter=limiter) for _ in range(3)))

    assert all(r.ok for r in results)
    windows = sorted((r.started_at, r.started_at + datetime.timedelta(milliseconds=r.duration_ms)) for r in results)
    tolerance = datetime.timedelta(milliseconds=1)
    for (_, first_end), (second_start, _) in itertools.pairwise(windows):
        assert second_start + tolerance >= first_end  # one at a time
    assert sum(1 for r in results if r.queued_ms > 1) == 2
