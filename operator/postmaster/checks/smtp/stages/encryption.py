"""TLS stages: the handshake, implicit (on connect) or after STARTTLS, and the facts recorded about it.

`prepare_context` builds the SSL context once per probe, wired to a `HandshakeRecorder` so that the probe
can tell when the handshake began and ended and what certificate chain the server sent, even when
verification fails. `starttls` runs STARTTLS and the handshake that follows; with implicit TLS the handshake
happens inside the greeting stage, which calls `implicit_handshake_done` or `implicit_handshake_failed`.
`collect_tls` turns what the recorder saw into :class:`TlsFacts`. `sniff_tls` is a diagnosis, not a stage of
the walk: after a silent greeting on a plain-text port it asks whether the port expects TLS from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import NoReturn

import aiosmtplib

from postmaster.checks.smtp.result import Extensions, FailureKind, Reply, StageName, TlsFacts
from postmaster.checks.smtp.state import SessionState
from postmaster.checks.smtp.tls import (
    certificate_facts,
    describe_tls_error,
    hostname_matches,
    recording_context,
    sniff_context,
    tls_failure_kind,
    verify_error_meaning,
)

_SNIFF_TIMEOUT = 3.0  # a TLS server answers a ClientHello in a round trip; a tarpit should not cost twice


async def prepare_context(session: SessionState) -> None:
    """The SSL context for this probe (built in a thread: loading a CA bundle reads files)."""
    session.context = await asyncio.to_thread(
        recording_context, session.config.tls_verify, session.config.ca_bundle_pem, session.recorder
    )


def collect_tls(session: SessionState) -> TlsFacts:
    """What the handshake recorder saw, as :class:`TlsFacts`; also kept in ``session.tls``."""
    recorder = session.recorder
    cert = None
    if recorder.chain_der:
        with contextlib.suppress(ValueError):
            cert = certificate_facts(recorder.chain_der[0])
    obj = recorder.ssl_object
    version = cipher = None
    bits = None
    if obj is not None:
        version = obj.version()
        info = obj.cipher()
        if info:
            cipher, bits = info[0], info[2]
    verified = obj is not None and session.config.tls_verify
    if verified:
        matched: bool | None = True
        chain: bool | None = True
    else:
        matched, chain = verify_error_meaning(recorder.verify_code)
        if matched is not False and cert is not None:
            matched = hostname_matches(session.host, cert.sans)
    trust = "none" if not session.config.tls_verify else ("ca-bundle" if session.config.ca_bundle_pem else "system")
    session.tls = TlsFacts(
        hostname=session.host,
        verify=session.config.tls_verify,
        trust=trust,
        version=version,
        cipher=cipher,
        cipher_bits=bits,
        certificate=cert,
        chain_length=len(recorder.chain_der) or None,
        hostname_matched=matched,
        chain_verified=chain,
        verify_code=recorder.verify_code,
        verify_error=recorder.verify_message,
    )
    return session.tls


def implicit_handshake_done(session: SessionState, start: float) -> float:
    """Record the implicit TLS handshake (if it finished) and move on to the banner; returns when the banner
    stage began."""
    end = session.recorder.finished or time.perf_counter()
    if session.recorder.finished is not None and session.tls is None:
        collect_tls(session)
        session.record(StageName.TLS, start, end=end, detail={"implicit": True})
    session.current = StageName.BANNER
    return end


def implicit_handshake_failed(session: SessionState, cause: BaseException, start: float) -> NoReturn:
    """The greeting stage's connect failed before the implicit TLS handshake finished: a failed TLS stage."""
    session.implicit_tls_detected = None
    if isinstance(cause, ssl.SSLError):
        kind = tls_failure_kind(cause)
        if kind is FailureKind.NOT_TLS:
            session.implicit_tls_detected = False
        collect_tls(session)
        raise session.failed(StageName.TLS, start, kind, describe_tls_error(cause))
    if isinstance(cause, TimeoutError):
        raise session.failed(
            StageName.TLS,
            start,
            FailureKind.TIMEOUT,
            f"no TLS handshake within {max(session.timeouts.greeting, session.timeouts.tls):g}s",
        )
    raise session.failed(
        StageName.TLS,
        start,
        FailureKind.DISCONNECTED,
        "the server closed the connection during the TLS handshake",
    )


async def starttls(session: SessionState, ehlo: Extensions) -> None:
    """STARTTLS, then the handshake on the same connection: two stages, so a refusal and a bad certificate
    read differently."""
    session.current = StageName.STARTTLS
    start = time.perf_counter()
    if not ehlo.starttls:
        raise session.failed(
            StageName.STARTTLS,
            start,
            FailureKind.STARTTLS_UNAVAILABLE,
            "the server does not offer STARTTLS in its EHLO reply",
        )
    recorder = session.recorder
    try:
        response = await session.client.starttls(
            server_hostname=session.host, tls_context=session.context, timeout=session.timeouts.tls
        )
    except aiosmtplib.SMTPResponseException as exc:
        raise session.failed(
            StageName.STARTTLS,
            start,
            FailureKind.REPLY,
            "the server refused STARTTLS",
            command="STARTTLS",
            reply=session.reply(exc.code, exc.message),
        ) from None
    except (ssl.SSLError, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
        if recorder.started is None:
            kind = FailureKind.TIMEOUT if isinstance(exc, TimeoutError) else FailureKind.DISCONNECTED
            text = f"no reply within {session.timeouts.tls:g}s" if isinstance(exc, TimeoutError) else "connection lost"
            raise session.failed(StageName.STARTTLS, start, kind, text, command="STARTTLS") from None
        began = recorder.started
        session.record(StageName.STARTTLS, start, end=began, command="STARTTLS", reply=Reply(220, None, ""))
        session.current = StageName.TLS
        collect_tls(session)
        if isinstance(exc, ssl.SSLError):
            raise session.failed(StageName.TLS, began, tls_failure_kind(exc), describe_tls_error(exc)) from None
        if isinstance(exc, TimeoutError):
            raise session.failed(
                StageName.TLS, began, FailureKind.TIMEOUT, f"no TLS handshake within {session.timeouts.tls:g}s"
            ) from None
        raise session.failed(
            StageName.TLS,
            began,
            FailureKind.DISCONNECTED,
            "the server closed the connection during the TLS handshake",
        ) from None
    session.record(
        StageName.STARTTLS,
        start,
        end=recorder.started,
        command="STARTTLS",
        reply=session.reply(response.code, response.message),
    )
    collect_tls(session)
    session.record(StageName.TLS, recorder.started or start, end=recorder.finished, detail={"implicit": False})


async def sniff_tls(session: SessionState) -> None:
    """After a silent greeting: does this port answer a TLS ClientHello (an implicit-TLS port spoken to in
    plain text waits for the client just as a tarpit does)?"""
    if session.address is None:
        return
    start = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(min(session.timeouts.tls, _SNIFF_TIMEOUT)):
            _, writer = await asyncio.open_connection(
                session.address, session.config.port, ssl=sniff_context(), server_hostname=session.host
            )
    except (OSError, TimeoutError):
        session.implicit_tls_detected = False
    else:
        session.implicit_tls_detected = True
    finally:
        if writer is not None:
            writer.close()
    session.record(StageName.TLS_SNIFF, start, detail={"speaks_tls": session.implicit_tls_detected})
