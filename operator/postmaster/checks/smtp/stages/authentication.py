"""The AUTH stage: PLAIN, LOGIN and CRAM-MD5 with the Secret's password, or XOAUTH2 with an access token.

`authenticate` first checks that the server offers the configured mechanism in its (last) EHLO reply, so that
"not offered", "offered only after STARTTLS" and "refused the credentials" read differently. For XOAUTH2 the
token is fetched first, as a TOKEN stage of its own when it comes from a token endpoint; a refused token is
invalidated so that the next probe fetches a new one. Credentials and tokens never reach what is recorded:
the command shows ``<hidden>`` and everything else passes through `SessionState.scrub`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiosmtplib

from postmaster.checks.oauth2 import TokenRequestError
from postmaster.checks.smtp.config import AuthMethod
from postmaster.checks.smtp.result import Extensions, FailureKind, StageName
from postmaster.checks.smtp.state import SessionState

_HIDDEN = "<hidden>"


async def authenticate(session: SessionState, extensions: Extensions) -> None:
    """AUTH with the configured mechanism, if the server offers it in `extensions`."""
    session.current = StageName.AUTH
    start = time.perf_counter()
    mechanism = session.config.auth.sasl_name
    encrypted = session.recorder.ssl_object is not None
    offered = extensions.auth_mechanisms
    if mechanism not in offered:
        facts = {"offered": offered, "encrypted": encrypted, "starttls_offered": extensions.starttls}
        if not offered and not encrypted and extensions.starttls:
            text = "the server offers AUTH only after STARTTLS"
        elif not offered:
            text = "the server offers no AUTH at all"
        else:
            text = f"the server does not offer AUTH {mechanism} (it offers {' '.join(offered)})"
        raise session.failed(StageName.AUTH, start, FailureKind.AUTH_UNAVAILABLE, text, stage_detail=facts)
    username = session.config.username or ""
    if session.config.auth is AuthMethod.XOAUTH2:
        await _xoauth2(session, username)
        return
    if session.config.password is None:
        raise RuntimeError("password authentication without a password")
    password = session.config.password.reveal()
    session.auth_mechanism = mechanism
    display = f"AUTH {mechanism} {_HIDDEN}"
    methods = {
        AuthMethod.PLAIN: session.client.auth_plain,
        AuthMethod.LOGIN: session.client.auth_login,
        AuthMethod.CRAM_MD5: session.client.auth_crammd5,
    }
    response = await session.call(
        StageName.AUTH,
        start,
        methods[session.config.auth](username, password, timeout=session.timeouts.command),
        display=display,
        refused=(aiosmtplib.SMTPAuthenticationError, "the server refused the credentials"),
    )
    session.record(StageName.AUTH, start, command=display, reply=session.reply(response.code, response.message))


async def _xoauth2(session: SessionState, username: str) -> None:
    """Fetch the access token (the TOKEN stage), then AUTH XOAUTH2 with it."""
    source = session.config.token
    if source is None:
        raise RuntimeError("xoauth2 without a token source")
    session.current = StageName.TOKEN
    start = time.perf_counter()
    try:
        async with asyncio.timeout(session.timeouts.command):
            token = await source.get_token()
    except TokenRequestError as exc:
        facts = {
            "status": exc.status,
            "error": exc.error,
            "description": exc.description,
            "transient": exc.transient,
        }
        raise session.failed(StageName.TOKEN, start, FailureKind.TOKEN_REQUEST, str(exc), stage_detail=facts) from None
    except TimeoutError:
        raise session.failed(
            StageName.TOKEN, start, FailureKind.TIMEOUT, f"no token within {session.timeouts.command:g}s"
        ) from None
    session.add_secret(token.reveal())
    if source.kind != "static":
        session.record(StageName.TOKEN, start, detail={"source": source.kind})
    session.current = StageName.AUTH
    start = time.perf_counter()
    session.auth_mechanism = "XOAUTH2"
    display = f"AUTH XOAUTH2 {_HIDDEN}"
    blob = base64.b64encode(b"user=" + username.encode() + b"\x01auth=Bearer " + token.reveal().encode() + b"\x01\x01")
    response = await session.command(StageName.AUTH, start, b"AUTH", b"XOAUTH2", blob, display=display)
    challenge: dict[str, str] | None = None
    if response.code == 334:
        challenge = _xoauth2_challenge(session, response.message)
        response = await session.command(StageName.AUTH, start, b"", display="(empty line)")
    reply = session.reply(response.code, response.message)
    if response.code != 235:
        source.invalidate()
        raise session.failed(
            StageName.AUTH,
            start,
            FailureKind.REPLY,
            "the server refused the access token",
            command=display,
            reply=reply,
            stage_detail={"challenge": challenge} if challenge else None,
        )
    session.record(StageName.AUTH, start, command=display, reply=reply)


def _xoauth2_challenge(session: SessionState, message: str) -> dict[str, str] | None:
    """The JSON error some servers (Gmail) send in a 334 before refusing a token: status, schemes, scope."""
    try:
        decoded = json.loads(base64.b64decode(message.strip(), validate=True))
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    return {k: session.scrub(str(decoded[k])) for k in ("status", "schemes", "scope") if k in decoded}
