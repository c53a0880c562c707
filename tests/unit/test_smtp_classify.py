"""Classification is a pure function: replies worded as providers word them map to stable reasons.

The integration tests produce each reason from a real server; these cover the provider wordings no local server
speaks (Gmail, Microsoft 365, Amazon SES, SendGrid) and the fine print of status and hints.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from postmaster.checks.smtp import (
    Failure,
    FailureKind,
    ProbeHints,
    ProbeResult,
    Reason,
    Reply,
    Stage,
    StageName,
    classify,
)

NOW = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)


def result(
    stage: StageName,
    code: int | None = None,
    text: str = "",
    *,
    kind: FailureKind = FailureKind.REPLY,
    detail: dict[str, Any] | None = None,
    **fields: Any,
) -> ProbeResult:
    reply = Reply.parse(code, text) if code is not None else None
    values: dict[str, Any] = {
        "host": "smtp.example.com",
        "port": 587,
        "tls_mode": "starttls",
        "auth_method": "plain",
        "username": "app@example.com",
        "mail_from": "app@example.com",
        "rcpt_to": None,
        "started_at": NOW,
        "duration_ms": 42.0,
        "queued_ms": 0.0,
        "addresses": ["192.0.2.10"],
        "peer": "192.0.2.10:587",
        "banner": None,
        "ehlo": None,
        "ehlo_after_tls": None,
        "tls": None,
        "auth_mechanism": None,
        "token_source": None,
        "implicit_tls_detected": None,
        "stages": [Stage(name=stage, ok=False, duration_ms=1.0, reply=reply, error="x", detail=detail or {})],
        "failure": Failure(stage=stage, kind=kind, detail="x", reply=reply),
    }
    values.update(fields)
    return ProbeResult(**values)


@pytest.mark.parametrize(
    ("stage", "code", "text", "reason", "status"),
    [
        # Gmail
        (
            StageName.AUTH,
            534,
            "5.7.9 Application-specific password required. Learn more at\n5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor",
            Reason.AUTHENTICATION_FAILED,
            "False",
        ),
        (
            StageName.AUTH,
            535,
            "5.7.8 Username and Password not accepted. For more information, go to\n5.7.8  https://support.google.com/mail/?p=BadCredentials",
            Reason.AUTHENTICATION_FAILED,
            "False",
        ),
        (StageName.AUTH, 454, "4.7.0 Too many login attempts, please try again later.", Reason.RATE_LIMITED, "Unknown"),
        (StageName.MAIL, 550, "5.4.5 Daily user sending limit exceeded.", Reason.RATE_LIMITED, "Unknown"),
        # Microsoft 365 / Exchange
        (
            StageName.AUTH,
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            Reason.BASIC_AUTH_DISABLED,
            "False",
        ),
        (
            StageName.AUTH,
            535,
            "5.7.30 Basic authentication is not supported for Client Submission.",
            Reason.BASIC_AUTH_DISABLED,
            "False",
        ),
        (StageName.AUTH, 535, "5.7.3 Authentication unsuccessful", Reason.AUTHENTICATION_FAILED, "False"),
        (StageName.MAIL, 530, "5.7.57 Client not authenticated to send mail.", Reason.AUTHENTICATION_REQUIRED, "False"),
        (
            StageName.MAIL,
            550,
            "5.7.60 SMTP; Client does not have permissions to send as this sender",
            Reason.SENDER_REJECTED,
            "False",
        ),
        (StageName.RCPT, 550, "5.7.64 TenantAttribution; Relay Access Denied", Reason.SENDER_REJECTED, "False"),
        (
            StageName.DATA,
            421,
            "4.4.2 Message submission rate for this client has exceeded the configured limit",
            Reason.RATE_LIMITED,
            "Unknown",
        ),
        (
            StageName.DATA,
            554,
            "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
            Reason.SENDER_REJECTED,
            "False",
        ),
        (StageName.DATA, 550, "5.7.1 Message rejected as spam by Content Filtering.", Reason.MESSAGE_REJECTED, "False"),
        # Amazon SES
        (StageName.MAIL, 454, "Throttling failure: Maximum sending rate exceeded.", Reason.RATE_LIMITED, "Unknown"),
        (StageName.DATA, 454, "Throttling failure: Daily message quota exceeded.", Reason.RATE_LIMITED, "Unknown"),
        (
            StageName.DATA,
            554,
            "Message rejected: Email address is not verified. The following identities failed the check in "
            "region EU-WEST-1: app@example.com",
            Reason.SENDER_REJECTED,
            "False",
        ),
        # SendGrid
        (
            StageName.DATA,
            550,
            "The from address does not match a verified Sender Identity. "
            "Mail cannot be sent until this error is resolved.",
            Reason.SENDER_REJECTED,
            "False",
        ),
        # Postfix and generic servers
        (StageName.MAIL, 530, "5.7.0 Must issue a STARTTLS command first", Reason.STARTTLS_REQUIRED, "False"),
        (
            StageName.AUTH,
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
            Reason.STARTTLS_REQUIRED,
            "False",
        ),
        (StageName.AUTH, 504, "5.5.4 Unrecognized authentication type", Reason.AUTH_MECHANISM_UNSUPPORTED, "False"),
        (StageName.MAIL, 451, "4.3.0 Temporary lookup failure", Reason.SERVER_TEMPORARY_FAILURE, "Unknown"),
        (
            StageName.BANNER,
            554,
            "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            Reason.CONNECTION_REJECTED,
            "False",
        ),
        (
            StageName.BANNER,
            421,
            "4.7.0 Try again later, closing connection.",
            Reason.SERVER_TEMPORARY_FAILURE,
            "Unknown",
        ),
        (StageName.BANNER, 421, "4.7.0 Too many connections from your IP", Reason.RATE_LIMITED, "Unknown"),
        (
            StageName.EHLO,
            550,
            "5.7.1 Helo command rejected: need fully-qualified hostname",
            Reason.CONNECTION_REJECTED,
            "False",
        ),
        (
            StageName.STARTTLS,
            454,
            "4.7.0 TLS not available due to local problem",
            Reason.SERVER_TEMPORARY_FAILURE,
            "Unknown",
        ),
        (
            StageName.RCPT,
            550,
            "5.1.1 <nobody@example.net>: Recipient address rejected: User unknown",
            Reason.RECIPIENT_REJECTED,
            "False",
        ),
        (
            StageName.MAIL,
            553,
            "5.7.1 <x@example.com>: Sender address rejected: not owned by user app@example.com",
            Reason.SENDER_REJECTED,
            "False",
        ),
    ],
)
def test_provider_wordings(stage: StageName, code: int, text: str, reason: Reason, status: str) -> None:
    verdict = classify(result(stage, code, text), now=NOW)

    assert (verdict.reason, verdict.status) == (reason, status)
    assert verdict.transient is (status == "Unknown")
    assert verdict.stage == stage.value
    assert Reply.parse(code, text).text.split()[0] in verdict.message  # the server's own words are quoted


def test_gmail_app_password_advice() -> None:
    verdict = classify(result(StageName.AUTH, 534, "5.7.9 Application-specific password required."), now=NOW)
    assert "app password" in verdict.message
    assert "2-Step Verification" in verdict.message


def test_hints_are_appended_where_they_apply() -> None:
    hints = ProbeHints(
        auth="SendGrid's username is literally apikey; the password is the API key.",
        rate_limit="Amazon SES: raise the sending quota in the SES console.",
        sender="Verify the sender in SES.",
    )
    auth = classify(result(StageName.AUTH, 535, "5.7.8 Authentication failed"), hints, now=NOW)
    rate = classify(result(StageName.MAIL, 454, "Throttling failure: Maximum sending rate exceeded."), hints, now=NOW)
    sender = classify(result(StageName.MAIL, 550, "5.7.1 Sender address rejected"), hints, now=NOW)

    assert auth.message.endswith("SendGrid's username is literally apikey; the password is the API key.")
    assert rate.message.endswith("Amazon SES: raise the sending quota in the SES console.")
    assert "apikey" not in rate.message
    assert sender.message.endswith("Verify the sender in SES.")


def test_relay_denied_for_a_client_without_auth() -> None:
    verdict = classify(
        result(StageName.RCPT, 554, "5.7.1 <bob@example.net>: Relay access denied", auth_method="none"), now=NOW
    )
    assert verdict.reason is Reason.RECIPIENT_REJECTED
    assert "set auth.method" in verdict.message


def test_token_request_failure_wording() -> None:
    facts = {"status": 400, "error": "invalid_scope", "description": "AADSTS70011: bad scope", "transient": False}
    verdict = classify(
        result(StageName.TOKEN, kind=FailureKind.TOKEN_REQUEST, detail=facts, auth_method="xoauth2"), now=NOW
    )
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.TOKEN_REQUEST_FAILED, "False", True)
    assert "https://outlook.office365.com/.default" in verdict.message


def test_xoauth2_refusal_is_token_expired_whatever_the_code() -> None:
    verdict = classify(
        result(StageName.AUTH, 535, "5.7.3 Authentication unsuccessful", auth_method="xoauth2", token_source="static"),
        now=NOW,
    )
    assert (verdict.reason, verdict.needs_person) == (Reason.TOKEN_EXPIRED, True)


def test_transient_network_failures_are_unknown_and_need_nobody() -> None:
    for kind, stage, reason in [
        (FailureKind.CONNECT_REFUSED, StageName.CONNECT, Reason.CONNECTION_REFUSED),
        (FailureKind.CONNECT_TIMEOUT, StageName.CONNECT, Reason.CONNECTION_TIMED_OUT),
        (FailureKind.CONNECT_ERROR, StageName.CONNECT, Reason.CONNECTION_FAILED),
        (FailureKind.DNS_TIMEOUT, StageName.RESOLVE, Reason.DNS_RESOLUTION_FAILED),
        (FailureKind.TIMEOUT, StageName.MAIL, Reason.CONNECTION_TIMED_OUT),
        (FailureKind.DISCONNECTED, StageName.EHLO, Reason.SERVER_DISCONNECTED),
    ]:
        verdict = classify(result(stage, kind=kind), now=NOW)
        assert (verdict.reason, verdict.status, verdict.transient, verdict.needs_person) == (
            reason, "Unknown", True, False,
        )  # fmt: skip


def test_protocol_error_is_permanent() -> None:
    verdict = classify(result(StageName.BANNER, kind=FailureKind.PROTOCOL), now=NOW)
    assert (verdict.reason, verdict.status) == (Reason.PROTOCOL_ERROR, "False")


def test_to_dict_uses_condition_words() -> None:
    verdict = classify(result(StageName.AUTH, 535, "5.7.8 Authentication failed"), now=NOW)
    assert verdict.to_dict() == {
        "reason": "AuthenticationFailed",
        "message": verdict.message,
        "status": "False",
        "transient": False,
        "needsPerson": True,
        "stage": "auth",
        "warnings": [],
    }
