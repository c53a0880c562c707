"""Closing the session: RSET and QUIT, which are recorded but never fail a probe.

By the time a probe gets here every check that matters is done, so a server that refuses RSET or hangs up
without answering QUIT is noted in its stage and nothing more. When a stage failed, `quit_after_failure` still
says goodbye, briefly and without recording anything, so the server is not left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiosmtplib

from postmaster.checks.smtp.result import StageName
from postmaster.checks.smtp.state import SessionState


async def rset(session: SessionState) -> None:
    """Drop the envelope. A refusal here does not fail the probe: the checks that matter are done."""
    await _closing_command(session, StageName.RSET, b"RSET", expect=250)


async def quit(session: SessionState) -> None:
    """Say goodbye; like RSET, a server that hangs up rudely here does not fail the probe."""
    if session.client.is_connected:
        await _closing_command(session, StageName.QUIT, b"QUIT", expect=221)


async def quit_after_failure(session: SessionState) -> None:
    """After a failed stage: QUIT if the connection is still open, waiting at most a second, recording nothing."""
    if session.smtp is not None and session.smtp.is_connected:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(min(1.0, session.timeouts.command)):
                await session.smtp.execute_command(b"QUIT")


async def _closing_command(session: SessionState, name: StageName, verb: bytes, *, expect: int) -> None:
    """RSET and QUIT: recorded, never a failure of the probe."""
    session.current = name
    start = time.perf_counter()
    command = verb.decode()
    try:
        response = await session.client.execute_command(verb, timeout=session.timeouts.command)
    except (aiosmtplib.SMTPException, OSError) as exc:
        session.record(name, start, ok=False, command=command, error=type(exc).__name__)
        return
    reply = session.reply(response.code, response.message)
    session.record(name, start, ok=response.code == expect, command=command, reply=reply)
