"""The server's greeting and EHLO.

`receive_greeting` hands the connected socket to aiosmtplib and reads the banner; with implicit TLS the
handshake comes first and is recorded as its own stage (see `encryption`). A greeting that never comes on
a plain-text port may mean the port expects TLS: the stage then sniffs for it, so the failure can say so.
`say_ehlo` sends EHLO (again after STARTTLS) and falls back to HELO for a server from before ESMTP.
"""

from __future__ import annotations

import time
from typing import NoReturn

import aiosmtplib

from postmaster.checks.smtp.config import TlsMode
from postmaster.checks.smtp.result import Extensions, FailureKind, StageName
from postmaster.checks.smtp.stages.encryption import implicit_handshake_done, implicit_handshake_failed, sniff_tls
from postmaster.checks.smtp.state import SessionState


async def receive_greeting(session: SessionState) -> None:
    """Hand the socket to aiosmtplib; with implicit TLS that is the handshake, then the banner either way."""
    implicit = session.config.tls is TlsMode.IMPLICIT
    session.current = StageName.TLS if implicit else StageName.BANNER
    if session.sock is None or session.helo is None:
        raise RuntimeError("receive_greeting() before connect()")
    smtp = aiosmtplib.SMTP(
        hostname=session.host,
        sock=session.sock,
        use_tls=implicit,
        start_tls=False,
        tls_context=session.context if implicit else None,
        validate_certs=session.config.tls_verify,
        local_hostname=session.helo,
        timeout=session.timeouts.command,
    )
    session.sock = None  # aiosmtplib owns and closes it now
    session.smtp = smtp
    start = time.perf_counter()
    try:
        response = await smtp.connect(
            timeout=max(session.timeouts.greeting, session.timeouts.tls) if implicit else session.timeouts.greeting
        )
    except aiosmtplib.SMTPConnectResponseError as exc:
        banner_start = implicit_handshake_done(session, start) if implicit else start
        session.banner = session.reply(exc.code, exc.message)
        raise session.failed(
            StageName.BANNER, banner_start, FailureKind.REPLY, "the server refused the session", reply=session.banner
        ) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPResponseException) as exc:
        await _greeting_failed(session, exc, start, implicit)
    banner_start = implicit_handshake_done(session, start) if implicit else start
    session.banner = session.reply(response.code, response.message)
    session.record(StageName.BANNER, banner_start, reply=session.banner)


async def _greeting_failed(session: SessionState, exc: Exception, start: float, implicit: bool) -> NoReturn:
    """Why aiosmtplib could not read a greeting: the implicit TLS handshake failed, or the banner did."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if implicit and session.recorder.finished is None:
        implicit_handshake_failed(session, cause, start)
    banner_start = implicit_handshake_done(session, start) if implicit else start
    if isinstance(cause, TimeoutError):
        failure = session.failed(
            StageName.BANNER,
            banner_start,
            FailureKind.TIMEOUT,
            f"connected, but no greeting within {session.timeouts.greeting:g}s",
        )
        if not implicit:
            await sniff_tls(session)
        raise failure from None
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        raise session.failed(
            StageName.BANNER, banner_start, FailureKind.PROTOCOL, f"the greeting is not SMTP: {exc.message}"
        )
    raise session.failed(
        StageName.BANNER,
        banner_start,
        FailureKind.DISCONNECTED,
        "the server closed the connection before sending a greeting",
    )


async def say_ehlo(session: SessionState, name: StageName) -> Extensions:
    """EHLO (or HELO if the server does not know EHLO) as stage `name`; returns the extensions it offers."""
    session.current = name
    start = time.perf_counter()
    helo = session.helo or "localhost"
    display = f"EHLO {helo}"
    response = await session.command(name, start, b"EHLO", helo.encode("ascii"), display=display)
    if response.code == 250:
        session.client.last_ehlo_response = response
        extensions = Extensions.from_keywords(session.client.esmtp_extensions, session.client.server_auth_methods)
        session.record(
            name, start, command=display, reply=session.reply(response.code, response.message.split("\n")[0])
        )
        return extensions
    if response.code in (500, 502):  # a server from before ESMTP
        old = await session.command(name, start, b"HELO", helo.encode("ascii"), display=f"HELO {helo}")
        if old.code == 250:
            session.client.last_helo_response = old
            session.record(name, start, command=f"HELO {helo}", reply=session.reply(old.code, old.message))
            return Extensions.from_keywords({}, [])
        response = old
    raise session.failed(
        name,
        start,
        FailureKind.REPLY,
        "the server refused EHLO",
        command=display,
        reply=session.reply(response.code, response.message),
    )
