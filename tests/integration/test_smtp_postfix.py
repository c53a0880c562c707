"""The probe against a real Postfix (Debian's package) with Dovecot SASL, the relay most providers resemble."""

from __future__ import annotations

from typing import Any

from postmaster.checks.smtp import (
    AuthMethod,
    FailureKind,
    ProbeConfig,
    Reason,
    Secret,
    StageName,
    Timeouts,
    TlsMode,
    classify,
    probe,
    send_test_email,
)
from tests.fixtures.smtp import HOST, PASSWORD, USER, PostfixRelay

FAST = Timeouts(connect=2, greeting=3, tls=3, command=3, total=20)
SHORT = Timeouts(connect=1, greeting=0.5, tls=1, command=1, total=5)


def config(relay: PostfixRelay, port: int, **overrides: Any) -> ProbeConfig:
    values: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "tls": TlsMode.STARTTLS,
        "ca_bundle_pem": relay.ca_pem,
        "auth": AuthMethod.PLAIN,
        "username": USER,
        "password": Secret(PASSWORD),
        "mail_from": USER,
        "rcpt_to": "bob@example.net",
        "timeouts": FAST,
    }
    values.update(overrides)
    return ProbeConfig(**values)


async def test_submission_with_starttls_and_sasl(postfix_relay: PostfixRelay) -> None:
    for method in (AuthMethod.PLAIN, AuthMethod.LOGIN):
        result = await probe(config(postfix_relay, postfix_relay.submission_port, auth=method))

        assert result.ok, (result.failure, postfix_relay.log[-2000:])
        assert result.banner is not None
        assert result.banner.text == "relay.postmaster.test ESMTP Postfix"
        assert result.ehlo is not None
        assert result.ehlo_after_tls is not None
        assert result.ehlo.starttls
        assert result.ehlo.auth_mechanisms == []
        assert result.ehlo_after_tls.auth_mechanisms == ["PLAIN", "LOGIN"]
        assert result.ehlo_after_tls.pipelining
        assert result.ehlo_after_tls.size == 10240000
        assert result.tls is not None
        assert result.tls.chain_verified
        assert result.tls.hostname_matched
        assert classify(result).reason is Reason.SUCCEEDED


async def test_implicit_tls_port(postfix_relay: PostfixRelay) -> None:
    result = await probe(config(postfix_relay, postfix_relay.smtps_port, tls=TlsMode.IMPLICIT))

    assert result.ok, result.failure
    assert [s.name.value for s in result.stages][:4] == ["resolve", "connect", "tls", "banner"]


async def test_postfix_wants_starttls_before_mail(postfix_relay: PostfixRelay) -> None:
    result = await probe(
        config(
            postfix_relay,
            postfix_relay.submission_port,
            tls=TlsMode.NONE,
            auth=AuthMethod.NONE,
            username=None,
            password=None,
        )
    )

    assert result.failure is not None
    assert result.failure.reply is not None
    assert str(result.failure.reply) == "530 5.7.0 Must issue a STARTTLS command first"
    assert classify(result).reason is Reason.STARTTLS_REQUIRED


async def test_postfix_offers_auth_only_after_starttls(postfix_relay: PostfixRelay) -> None:
    result = await probe(config(postfix_relay, postfix_relay.submission_port, tls=TlsMode.NONE))

    assert result.failure is not None
    assert result.failure.kind is FailureKind.AUTH_UNAVAILABLE
    assert classify(result).reason is Reason.STARTTLS_REQUIRED


async def test_postfix_refuses_a_wrong_password(postfix_relay: PostfixRelay) -> None:
    result = await probe(config(postfix_relay, postfix_relay.submission_port, password=Secret("wrong")))

    assert result.failure is not None
    assert result.failure.reply is not None
    assert (result.failure.reply.code, result.failure.reply.enhanced) == (535, "5.7.8")
    assert classify(result).reason is Reason.AUTHENTICATION_FAILED


async def test_postfix_does_not_offer_cram_md5(postfix_relay: PostfixRelay) -> None:
    result = await probe(config(postfix_relay, postfix_relay.submission_port, auth=AuthMethod.CRAM_MD5))

    verdict = classify(result)
    assert verdict.reason is Reason.AUTH_MECHANISM_UNSUPPORTED
    assert "it offers PLAIN LOGIN" in verdict.message
    assert "plain, login" in verdict.message


async def test_postfix_refuses_a_sender_the_login_does_not_own(postfix_relay: PostfixRelay) -> None:
    result = await probe(config(postfix_relay, postfix_relay.submission_port, mail_from="mallory@postmaster.test"))

    assert result.failure is not None
    assert result.failure.stage is StageName.MAIL
    assert result.failure.reply is not None
    assert result.failure.reply.code == 553
    assert "not owned by user" in result.failure.reply.text
    verdict = classify(result)
    assert (verdict.reason, verdict.status) == (Reason.SENDER_REJECTED, "False")
    assert "mallory@postmaster.test" in verdict.message
    assert "send as" in verdict.message


async def test_postfix_does_not_relay_for_strangers(postfix_relay: PostfixRelay) -> None:
    result = await probe(
        config(postfix_relay, postfix_relay.plain_port, tls=TlsMode.NONE, auth=AuthMethod.NONE, username=None,
               password=None)
    )  # fmt: skip

    assert result.failure is not None
    assert result.failure.stage is StageName.RCPT
    assert result.failure.reply is not None
    assert "Relay access denied" in result.failure.reply.text
    verdict = classify(result)
    assert verdict.reason is Reason.RECIPIENT_REJECTED
    assert "set auth.method" in verdict.message


async def test_tls_mode_mismatch_both_ways(postfix_relay: PostfixRelay) -> None:
    implicit_on_587 = await probe(
        config(postfix_relay, postfix_relay.submission_port, tls=TlsMode.IMPLICIT, timeouts=SHORT)
    )
    starttls_on_465 = await probe(config(postfix_relay, postfix_relay.smtps_port, timeouts=SHORT))

    assert classify(implicit_on_587).reason is Reason.TLS_MISMATCH
    assert implicit_on_587.failure is not None
    assert implicit_on_587.failure.kind is FailureKind.NOT_TLS
    assert classify(starttls_on_465).reason is Reason.TLS_MISMATCH
    assert starttls_on_465.implicit_tls_detected is True


async def test_postfix_queues_a_test_message(postfix_relay: PostfixRelay) -> None:
    sent = await send_test_email(config(postfix_relay, postfix_relay.submission_port), "bob@example.net")

    assert sent.accepted, (sent.probe.failure, postfix_relay.log[-2000:])
    assert sent.queue_id is not None
    assert sent.queue_id.isalnum()
    assert sent.reply is not None
    assert str(sent.reply) == f"250 2.0.0 Ok: queued as {sent.queue_id}"
    assert sent.queue_id in postfix_relay.log
