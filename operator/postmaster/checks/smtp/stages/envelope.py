"""The envelope: MAIL FROM and RCPT TO, and DATA for the test message.

A probe that names a sender and a recipient stops after RCPT TO: by then the server has said whether it takes
mail from that sender (some providers only check the sender at MAIL FROM, some at RCPT TO) and nothing has
been sent. `send_test_email` goes on to DATA, whose reply (kept in ``session.data_reply``) may name the
server's queue id for the message.
"""

from __future__ import annotations

import time

import aiosmtplib

from postmaster.checks.smtp.result import FailureKind, StageName
from postmaster.checks.smtp.state import SessionState, StageFailedError


def _envelope_params(session: SessionState, address: str) -> list[bytes]:
    """SMTPUTF8 for a non-ASCII address when the server offers it."""
    extensions = session.ehlo_after_tls or session.ehlo
    if not address.isascii() and extensions is not None and extensions.smtputf8:
        return [b"SMTPUTF8"]
    return []


async def mail_from(session: SessionState, address: str) -> None:
    """MAIL FROM: does the server take mail from this sender?"""
    session.current = StageName.MAIL
    start = time.perf_counter()
    params = _envelope_params(session, address)
    display = f"MAIL FROM:<{address}>" + "".join(" " + p.decode() for p in params)
    arg = b"FROM:<" + address.encode() + b">"
    response = await session.command(StageName.MAIL, start, b"MAIL", arg, *params, display=display)
    reply = session.reply(response.code, response.message)
    if response.code != 250:
        raise session.failed(
            StageName.MAIL, start, FailureKind.REPLY, "the server refused the sender", command=display, reply=reply
        )
    session.record(StageName.MAIL, start, command=display, reply=reply)


async def rcpt_to(session: SessionState, address: str) -> None:
    """RCPT TO: does the server take mail for this recipient (from this sender)?"""
    session.current = StageName.RCPT
    start = time.perf_counter()
    display = f"RCPT TO:<{address}>"
    response = await session.command(StageName.RCPT, start, b"RCPT", b"TO:<" + address.encode() + b">", display=display)
    reply = session.reply(response.code, response.message)
    if response.code not in (250, 251):
        raise session.failed(
            StageName.RCPT,
            start,
            FailureKind.REPLY,
            "the server refused the recipient",
            command=display,
            reply=reply,
        )
    session.record(StageName.RCPT, start, command=display, reply=reply)


async def data(session: SessionState, message: bytes) -> None:
    """DATA: send the message; the reply is kept in ``session.data_reply`` whether it accepts or refuses."""
    session.current = StageName.DATA
    start = time.perf_counter()
    display = f"DATA ({len(message)} bytes)"
    try:
        response = await session.call(
            StageName.DATA,
            start,
            session.client.data(message, timeout=session.timeouts.command),
            display=display,
            refused=(aiosmtplib.SMTPDataError, "the server refused the message"),
        )
    except StageFailedError:
        if session.failure is not None and session.failure.kind is FailureKind.REPLY:
            session.data_reply = session.failure.reply
        raise
    session.data_reply = session.reply(response.code, response.message)
    session.record(StageName.DATA, start, command=display, reply=session.data_reply)
