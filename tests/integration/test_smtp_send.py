"""A real test message through the same staged session as the probe."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest

from postmaster.checks.smtp import (
    AuthMethod,
    ProbeConfig,
    Reason,
    Secret,
    StageName,
    Timeouts,
    TlsMode,
    classify,
    send_test_email,
)
from tests.fixtures.smtp import HOST, PASSWORD, USER, SmtpServer

FAST = Timeouts(connect=2, greeting=2, tls=2, command=2, total=15)


def config(server: SmtpServer, **overrides: Any) -> ProbeConfig:
    values: dict[str, Any] = {
        "host": HOST,
        "port": server.port,
        "tls": TlsMode.STARTTLS,
        "ca_bundle_pem": server.ca_pem,
        "auth": AuthMethod.LOGIN,
        "username": USER,
        "password": Secret(PASSWORD),
        "mail_from": USER,
        "timeouts": FAST,
    }
    values.update(overrides)
    return ProbeConfig(**values)


async def test_message_accepted_and_delivered(submission_server: SmtpServer) -> None:
    handler = submission_server.handler
    assert handler is not None
    before = len(handler.messages)

    sent = await send_test_email(config(submission_server), "bob@example.net", subject="Hello from the test")

    assert sent.accepted, sent.probe.failure
    assert sent.reply is not None
    assert sent.reply.code == 250
    assert sent.queue_id is not None
    assert sent.reply.text.endswith(f"queued as {sent.queue_id}")
    assert [s.name.value for s in sent.probe.stages][-3:] == ["rcpt", "data", "quit"]
    assert classify(sent.probe).reason is Reason.SUCCEEDED
    assert len(handler.messages) == before + 1
    assert handler.envelopes[-1] == (USER, ["bob@example.net"])
    message = email.message_from_bytes(handler.messages[-1], policy=email.policy.default)
    assert message["Subject"] == "Hello from the test"
    assert (message["From"], message["To"]) == (USER, "bob@example.net")
    assert message["Message-ID"].strip() == sent.message_id
    assert "Postmaster" in message.get_content()


async def test_refused_sender_means_nothing_is_sent(tenant_server: SmtpServer) -> None:
    handler = tenant_server.handler
    assert handler is not None

    sent = await send_test_email(config(tenant_server), "bob@example.net")

    assert not sent.accepted
    assert sent.queue_id is None
    assert sent.probe.failure is not None
    assert sent.probe.failure.stage is StageName.MAIL
    assert classify(sent.probe).reason is Reason.SENDER_REJECTED
    assert handler.messages == []


async def test_refused_recipient(submission_server: SmtpServer) -> None:
    sent = await send_test_email(config(submission_server), "nobody@nowhere.test")

    assert not sent.accepted
    assert classify(sent.probe).reason is Reason.RECIPIENT_REJECTED


async def test_needs_a_sender_and_a_plain_recipient(submission_server: SmtpServer) -> None:
    with pytest.raises(ValueError, match="mail_from"):
        await send_test_email(config(submission_server, mail_from=None), "bob@example.net")
    with pytest.raises(ValueError, match="recipient"):
        await send_test_email(config(submission_server), "bob@example.net\r\nRCPT TO:<eve@example.net>")
