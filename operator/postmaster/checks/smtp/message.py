"""The test message `send_test_email` sends, and the queue id a server's reply to DATA may name."""

from __future__ import annotations

import email.message
import email.policy
import email.utils

from postmaster.checks.smtp.config import ProbeConfig
from postmaster.checks.smtp.result import Reply

_QUEUE_ID_MARKERS = ("queued as ",)


def queue_id_from(reply: Reply) -> str | None:
    """The server's id for an accepted message when its reply names one: Postfix's ``queued as 4Xyz``, or the
    token after ``OK``/``Ok`` (Exchange's ``<message-id>``, Gmail's and SES's ids)."""
    text = reply.text
    lowered = text.lower()
    for marker in _QUEUE_ID_MARKERS:
        at = lowered.find(marker)
        if at >= 0:
            rest = text[at + len(marker) :].split()
            return rest[0].strip(".,;") if rest else None
    words = text.split()
    if len(words) >= 2 and words[0].rstrip(":").lower() in {"ok", "queued"}:
        return words[1].strip(".,;")
    return None


def build_test_message(config: ProbeConfig, recipient: str, subject: str | None = None) -> tuple[bytes, str]:
    """A short plain-text message from ``config.mail_from`` to ``recipient``, and its Message-ID."""
    if config.mail_from is None:
        raise ValueError("a test message needs config.mail_from")
    domain = config.mail_from.rpartition("@")[2] or "postmaster.invalid"
    message = email.message.EmailMessage()
    message_id = email.utils.make_msgid("postmaster-test", domain=domain)
    message["From"] = config.mail_from
    message["To"] = recipient
    message["Subject"] = subject or "Postmaster test message"
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "This is a test message from Postmaster.\n\n"
        f"It went through {config.host} port {config.port} ({config.tls.value}) "
        f"with sender {config.mail_from}. If it reached you, the provider accepts mail from this sender.\n"
    )
    return message.as_bytes(policy=email.policy.SMTP), message_id
