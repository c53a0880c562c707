"""The staged SMTP probe and the test message.

A probe walks one SMTP session the way a mail client would and stops at the first stage that fails:

    resolve -> connect -> [tls] -> banner -> EHLO -> [STARTTLS -> tls -> EHLO] -> [token] -> [AUTH]
    -> [MAIL FROM] -> [RCPT TO] -> RSET -> QUIT

It sends no message (:func:`send_test_email` runs the same session with DATA instead of RSET). Every network step has
its own timeout and the whole probe a total one; callers share one :class:`asyncio.Semaphore` to bound how many
probes run at once, and a probe waiting on a silent server holds nothing but its own slot. Nothing here raises for
what the server or network did: it all ends up in the :class:`ProbeResult`, with any credential (and its base64
forms, should a server echo them) replaced by ``***``.

This module holds the entry points and the order of the stages; each stage is a function in
`postmaster.checks.smtp.stages` (connection, greeting, encryption, authentication, envelope, closing) working on
one shared `SessionState` (`postmaster.checks.smtp.state`). Name resolution is in `resolvers`, the test message in
`message`; their public names are importable from here as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from postmaster.checks.smtp.config import AuthMethod, ProbeConfig, TlsMode
from postmaster.checks.smtp.message import build_test_message, queue_id_from
from postmaster.checks.smtp.resolvers import (
    ResolutionError,
    Resolver,
    dns_resolver,
    lookup_resolver,
    system_resolver,
)
from postmaster.checks.smtp.result import ProbeResult, SendResult, StageName
from postmaster.checks.smtp.stages import authentication, closing, connection, encryption, envelope, greeting
from postmaster.checks.smtp.state import SessionState, StageFailedError, elapsed_ms

__all__ = [
    "ResolutionError",
    "Resolver",
    "build_test_message",
    "dns_resolver",
    "lookup_resolver",
    "probe",
    "queue_id_from",
    "send_test_email",
    "system_resolver",
]


async def _walk(session: SessionState, *, recipient: str | None, message: bytes | None) -> None:
    """The stages in order; the first that fails raises and ends the walk."""
    config = session.config
    await connection.resolve(session)
    if config.tls is not TlsMode.NONE:
        await encryption.prepare_context(session)
    await connection.connect(session)
    await greeting.receive_greeting(session)
    extensions = session.ehlo = await greeting.say_ehlo(session, StageName.EHLO)
    if config.tls is TlsMode.STARTTLS:
        await encryption.starttls(session, extensions)
        extensions = session.ehlo_after_tls = await greeting.say_ehlo(session, StageName.EHLO_AFTER_TLS)
    if config.auth is not AuthMethod.NONE:
        await authentication.authenticate(session, extensions)
    if config.mail_from is not None:
        await envelope.mail_from(session, config.mail_from)
        if recipient is not None:
            await envelope.rcpt_to(session, recipient)
    if message is not None:
        await envelope.data(session, message)
    else:
        await closing.rset(session)
    await closing.quit(session)


@contextlib.asynccontextmanager
async def _slot(limiter: asyncio.Semaphore | None) -> AsyncIterator[None]:
    if limiter is None:
        yield
        return
    async with limiter:
        yield


async def _run(
    config: ProbeConfig,
    *,
    recipient: str | None,
    message: bytes | None,
    limiter: asyncio.Semaphore | None,
    resolver: Resolver | None,
) -> SessionState:
    """One session, walked within a slot of `limiter` and the total timeout; raises nothing for what happened."""
    queued = time.perf_counter()
    async with _slot(limiter):
        session = SessionState(config, resolver or system_resolver)
        session.queued_ms = elapsed_ms(queued)
        try:
            async with asyncio.timeout(config.timeouts.total):
                await _walk(session, recipient=recipient, message=message)
        except StageFailedError:
            await closing.quit_after_failure(session)
        except TimeoutError:
            session.deadline_passed()
        finally:
            session.close()
            session.ended = time.perf_counter()
    return session


async def probe(
    config: ProbeConfig,
    *,
    limiter: asyncio.Semaphore | None = None,
    resolver: Resolver | None = None,
) -> ProbeResult:
    """Walk one SMTP session against ``config`` without sending a message; see the module docstring.

    ``limiter`` is the operator-wide bound on concurrent probes (time spent waiting for it is ``queued_ms`` and
    counts against no timeout). ``resolver`` defaults to :func:`system_resolver`.
    """
    session = await _run(config, recipient=config.rcpt_to, message=None, limiter=limiter, resolver=resolver)
    return session.result()


async def send_test_email(
    config: ProbeConfig,
    recipient: str,
    *,
    subject: str | None = None,
    limiter: asyncio.Semaphore | None = None,
    resolver: Resolver | None = None,
) -> SendResult:
    """Send one small real message to ``recipient`` through the same staged session as :func:`probe`.

    ``accepted`` is true when the server took the message after DATA; ``queue_id`` is its id for it when the reply
    names one. A refusal anywhere is in ``result.probe.failure``, to be classified like a probe's.
    """
    if config.mail_from is None:
        raise ValueError("a test message needs config.mail_from")
    if not recipient or any(c in recipient for c in "<>\r\n\t ") or "@" not in recipient:
        raise ValueError("recipient must be a bare address like user@example.com")
    message, message_id = build_test_message(config, recipient, subject)
    session = await _run(config, recipient=recipient, message=message, limiter=limiter, resolver=resolver)
    result = session.result()
    data = result.stage(StageName.DATA)
    accepted = data is not None and data.ok
    reply = session.data_reply
    return SendResult(
        probe=result,
        recipient=recipient,
        message_id=message_id,
        accepted=accepted,
        reply=reply,
        queue_id=queue_id_from(reply) if accepted and reply is not None else None,
    )
