"""What one SMTP session knows, and how each stage records what happened.

`SessionState` is shared by every stage of a probe (see `postmaster.checks.smtp.stages`): the probe's
configuration, the aiosmtplib client once connected, what the server said so far, and the list of
:class:`Stage` records that becomes the :class:`ProbeResult`. A stage calls `record()` when it succeeds and
raises what `failed()` returns when it does not; `call()` and `command()` run one exchange with the server
and turn aiosmtplib's errors into such a failed stage. Every text recorded passes through `scrub()`, which
replaces the credentials (and the base64 forms a server might echo) with ``***``.
"""

from __future__ import annotations

import base64
import datetime
import logging
import socket
import ssl
import time
from collections.abc import Awaitable
from typing import Any

import aiosmtplib

from postmaster.checks.smtp.config import AuthMethod, ProbeConfig
from postmaster.checks.smtp.resolvers import Resolver
from postmaster.checks.smtp.result import (
    Extensions,
    Failure,
    FailureKind,
    ProbeResult,
    Reply,
    Stage,
    StageName,
    TlsFacts,
)
from postmaster.checks.smtp.tls import HandshakeRecorder

log = logging.getLogger("postmaster.checks.smtp")


class StageFailedError(Exception):
    """A stage failed; the failure is already recorded."""


def elapsed_ms(start: float, end: float | None = None) -> float:
    """Milliseconds from `start` to `end` (or now), both :func:`time.perf_counter` readings."""
    return round(((end if end is not None else time.perf_counter()) - start) * 1000, 3)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SessionState:
    """One probe's state. Each stage records a :class:`Stage`, or raises what :meth:`failed` returns."""

    def __init__(self, config: ProbeConfig, resolver: Resolver) -> None:
        self.config = config
        self.timeouts = config.timeouts
        self.resolver = resolver
        self.host = config.host.strip("[]")
        # What the probe records: the stages so far, the one running, and the failure that ended it.
        self.stages: list[Stage] = []
        self.failure: Failure | None = None
        self.current = StageName.RESOLVE
        # Where it connected and what the server said.
        self.addresses: list[str] = []
        self.address: str | None = None
        self.peer: str | None = None
        self.banner: Reply | None = None
        self.ehlo: Extensions | None = None
        self.ehlo_after_tls: Extensions | None = None
        self.tls: TlsFacts | None = None
        self.auth_mechanism: str | None = None
        self.token_source = config.token.kind if config.token is not None else None
        self.implicit_tls_detected: bool | None = None
        self.data_reply: Reply | None = None
        # The connection: a plain socket until the greeting stage hands it to aiosmtplib.
        self.smtp: aiosmtplib.SMTP | None = None
        self.sock: socket.socket | None = None
        self.helo = config.helo_name
        self.recorder = HandshakeRecorder()
        self.context: ssl.SSLContext | None = None
        # What scrub() hides; see add_secret().
        self.secrets: list[str] = []
        # Timing: wall clock for the result, perf_counter readings for durations.
        self.started_at = datetime.datetime.now(datetime.UTC)
        self.clock_start = time.perf_counter()
        self.queued_ms = 0.0
        self.ended: float | None = None
        if config.password is not None:
            self.add_secret(config.password.reveal())

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """From now on, replace `value` (and its base64 forms in AUTH PLAIN and XOAUTH2) with ``***``."""
        if not value:
            return
        user = (self.config.username or "").encode()
        raw = value.encode()
        forms = {
            value,
            _b64(raw),
            _b64(b"\0" + user + b"\0" + raw),
            _b64(b"user=" + user + b"\x01auth=Bearer " + raw + b"\x01\x01"),
        }
        self.secrets.extend(f for f in forms if len(f) >= 4)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def reply(self, code: int, message: str) -> Reply:
        return Reply.parse(code, self.scrub(message))

    def record(
        self,
        name: StageName,
        start: float,
        *,
        ok: bool = True,
        end: float | None = None,
        command: str | None = None,
        reply: Reply | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Stage:
        stage = Stage(
            name=name,
            ok=ok,
            duration_ms=elapsed_ms(start, end),
            command=command,
            reply=reply,
            error=self.scrub(error) if error else None,
            detail=detail or {},
        )
        self.stages.append(stage)
        log.debug(
            "smtp probe %s:%d %s %s in %.1fms%s%s",
            self.config.host,
            self.config.port,
            name.value,
            "ok" if ok else "FAILED",
            stage.duration_ms,
            f" reply={reply}" if reply else "",
            f" error={stage.error}" if stage.error else "",
        )
        return stage

    def failed(
        self,
        name: StageName,
        start: float,
        kind: FailureKind,
        detail: str,
        *,
        end: float | None = None,
        command: str | None = None,
        reply: Reply | None = None,
        stage_detail: dict[str, Any] | None = None,
    ) -> StageFailedError:
        """Record the failed stage and the probe's failure; the caller raises what this returns."""
        detail = self.scrub(detail)
        self.record(name, start, ok=False, end=end, command=command, reply=reply, error=detail, detail=stage_detail)
        self.failure = Failure(stage=name, kind=kind, detail=detail, reply=reply)
        return StageFailedError()

    def deadline_passed(self) -> None:
        detail = f"the probe did not finish within its total time limit of {self.timeouts.total:g}s"
        self.record(self.current, self.clock_start, ok=False, error=detail)
        self.failure = Failure(stage=self.current, kind=FailureKind.TIMEOUT, detail=detail)

    def result(self) -> ProbeResult:
        config = self.config
        return ProbeResult(
            host=config.host,
            port=config.port,
            tls_mode=config.tls.value,
            auth_method=config.auth.value,
            username=config.username if config.auth is not AuthMethod.NONE else None,
            mail_from=config.mail_from,
            rcpt_to=config.rcpt_to,
            started_at=self.started_at,
            duration_ms=elapsed_ms(self.clock_start, self.ended),
            queued_ms=self.queued_ms,
            addresses=self.addresses,
            peer=self.peer,
            banner=self.banner,
            ehlo=self.ehlo,
            ehlo_after_tls=self.ehlo_after_tls,
            tls=self.tls,
            auth_mechanism=self.auth_mechanism,
            token_source=self.token_source,
            implicit_tls_detected=self.implicit_tls_detected,
            stages=list(self.stages),
            failure=self.failure,
        )

    @property
    def client(self) -> aiosmtplib.SMTP:
        if self.smtp is None:
            raise RuntimeError("no SMTP session yet")
        return self.smtp

    def close(self) -> None:
        if self.smtp is not None:
            self.client.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- one exchange with the server ------------------------------------------------------------------------

    async def call(
        self,
        name: StageName,
        start: float,
        operation: Awaitable[aiosmtplib.SMTPResponse],
        *,
        display: str,
        refused: tuple[type[aiosmtplib.SMTPResponseException], str] | None = None,
    ) -> aiosmtplib.SMTPResponse:
        """Await one exchange and turn aiosmtplib's errors into a failed stage. `refused` names the stage's own
        refusal (its exception type and what it means), reported with the server's reply."""
        try:
            return await operation
        except aiosmtplib.SMTPTimeoutError:
            raise self.failed(
                name, start, FailureKind.TIMEOUT, f"no reply within {self.timeouts.command:g}s", command=display
            ) from None
        except aiosmtplib.SMTPServerDisconnected:
            raise self.failed(
                name, start, FailureKind.DISCONNECTED, "the server closed the connection", command=display
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            if refused is not None and isinstance(exc, refused[0]):
                reply = self.reply(exc.code, exc.message)
                raise self.failed(name, start, FailureKind.REPLY, refused[1], command=display, reply=reply) from None
            raise self.failed(
                name, start, FailureKind.PROTOCOL, f"unreadable reply: {exc.message}", command=display
            ) from None

    async def command(self, name: StageName, start: float, *args: bytes, display: str) -> aiosmtplib.SMTPResponse:
        """Send one command line (`args` joined by spaces) and read the reply, as :meth:`call` does."""
        return await self.call(
            name, start, self.client.execute_command(*args, timeout=self.timeouts.command), display=display
        )
