"""The staged SMTP probe and the test message.

A probe walks one SMTP session the way a mail client would and stops at the first stage that fails:

    resolve -> connect -> [tls] -> banner -> EHLO -> [STARTTLS -> tls -> EHLO] -> [token] -> [AUTH]
    -> [MAIL FROM] -> [RCPT TO] -> RSET -> QUIT

It sends no message (:func:`send_test_email` runs the same session with DATA instead of RSET). Every network step has
its own timeout and the whole probe a total one; callers share one :class:`asyncio.Semaphore` to bound how many
probes run at once, and a probe waiting on a silent server holds nothing but its own slot. Nothing here raises for
what the server or network did: it all ends up in the :class:`ProbeResult`, with any credential (and its base64
forms, should a server echo them) replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import email.message
import email.policy
import email.utils
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import aiosmtplib

from postmaster.checks.oauth2 import TokenRequestError
from postmaster.checks.smtp.config import AuthMethod, ProbeConfig, TlsMode
from postmaster.checks.smtp.result import (
    Extensions,
    Failure,
    FailureKind,
    ProbeResult,
    Reply,
    SendResult,
    Stage,
    StageName,
    TlsFacts,
)
from postmaster.checks.smtp.tls import (
    HandshakeRecorder,
    certificate_facts,
    describe_tls_error,
    hostname_matches,
    recording_context,
    sniff_context,
    tls_failure_kind,
    verify_error_meaning,
)

log = logging.getLogger("postmaster.checks.smtp")

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Turns (host, port) into IP address strings, best first; raises :class:`ResolutionError` when it cannot."""

_MAX_ADDRESSES_TRIED = 3
_SNIFF_TIMEOUT = 3.0  # a TLS server answers a ClientHello in a round trip; a tarpit should not cost twice
_HIDDEN = "<hidden>"


class ResolutionError(Exception):
    """A name did not resolve. ``kind`` is DNS_NOT_FOUND (no such name or no address) or DNS_ERROR (try again)."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


_resolver_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    # getaddrinfo blocks; a lookup hanging on a dead DNS server must not occupy the loop's default executor, which
    # kopf and the rest of the operator share.
    global _resolver_pool  # noqa: PLW0603
    if _resolver_pool is None:
        _resolver_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="smtp-resolve")
    return _resolver_pool


def _unique(addresses: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (``/etc/hosts``, then DNS), as every other program on the machine sees names."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.run_in_executor(
            _pool(), socket.getaddrinfo, host, port, socket.AF_UNSPEC, socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        not_found = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        kind = FailureKind.DNS_NOT_FOUND if exc.errno in not_found else FailureKind.DNS_ERROR
        raise ResolutionError(kind, f"{host}: {exc.strerror}") from None
    return _unique([str(info[4][0]) for info in infos])


def dns_resolver(nameservers: Sequence[str], port: int = 53) -> Resolver:
    """A resolver that asks the given DNS servers directly (dnspython), for A then AAAA records."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = list(nameservers)
    resolver.port = port

    async def resolve(host: str, _port: int) -> list[str]:
        addresses: list[str] = []
        errors: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(host, rdtype)
            except dns.resolver.NXDOMAIN:
                raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: no such domain (NXDOMAIN)") from None
            except dns.resolver.NoAnswer:
                continue
            except dns.exception.Timeout:
                errors.append(f"{rdtype} lookup timed out")
            except dns.exception.DNSException as exc:
                errors.append(f"{rdtype} lookup failed: {exc}")
            else:
                addresses.extend(str(r) for r in answer)
        if addresses:
            return _unique(addresses)
        if errors:
            raise ResolutionError(FailureKind.DNS_ERROR, f"{host}: " + "; ".join(errors))
        raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: the name has no A or AAAA record")

    return resolve


def lookup_resolver(lookup: Any) -> Resolver:
    """Resolve through the operator's shared DNS layer (a :class:`postmaster.checks.dns.DnsLookup`, e.g. its
    ``DnsResolver``), so SMTP hosts share the one TTL-respecting cache with the SPF/DKIM/DMARC checks."""
    from postmaster.checks import dns as shared

    async def resolve(host: str, _port: int) -> list[str]:
        try:
            answers = [await lookup.a(host), await lookup.aaaa(host)]
        except shared.InvalidDomainNameError as exc:
            raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: {exc}") from None
        except shared.DnsTimeoutError as exc:
            raise ResolutionError(FailureKind.DNS_TIMEOUT, str(exc)) from None
        except shared.DnsTransientError as exc:
            raise ResolutionError(FailureKind.DNS_ERROR, str(exc)) from None
        if answers[0].status is shared.Status.NXDOMAIN:
            raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: no such domain (NXDOMAIN)")
        addresses = [str(record) for answer in answers for record in answer.records]
        if not addresses:
            raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: the name has no A or AAAA record")
        return _unique(addresses)

    return resolve


class _StageFailedError(Exception):
    """A stage failed; the failure is already recorded."""


def _ms(start: float, end: float | None = None) -> float:
    return round(((end if end is not None else time.perf_counter()) - start) * 1000, 3)


def _address_literal(address: str) -> str:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Session:
    """One probe's state. Each stage method records a :class:`Stage` or calls :meth:`fail` (which raises)."""

    def __init__(self, config: ProbeConfig, resolver: Resolver) -> None:
        self.cfg = config
        self.t = config.timeouts
        self.resolver = resolver
        self.host = config.host.strip("[]")
        self.stages: list[Stage] = []
        self.failure: Failure | None = None
        self.current = StageName.RESOLVE
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
        self.smtp: aiosmtplib.SMTP | None = None
        self.sock: socket.socket | None = None
        self.helo = config.helo_name
        self.recorder = HandshakeRecorder()
        self.context: ssl.SSLContext | None = None
        self.secrets: list[str] = []
        self.started_at = datetime.datetime.now(datetime.UTC)
        self.t0 = time.perf_counter()
        self.queued_ms = 0.0
        self.ended: float | None = None
        self.data_reply: Reply | None = None
        if config.password is not None:
            self._add_secret(config.password.reveal())

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _add_secret(self, value: str) -> None:
        if not value:
            return
        user = (self.cfg.username or "").encode()
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
            duration_ms=_ms(start, end),
            command=command,
            reply=reply,
            error=self.scrub(error) if error else None,
            detail=detail or {},
        )
        self.stages.append(stage)
        log.debug(
            "smtp probe %s:%d %s %s in %.1fms%s%s",
            self.cfg.host,
            self.cfg.port,
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
    ) -> _StageFailedError:
        """Record the failed stage and the probe's failure; the caller raises what this returns."""
        detail = self.scrub(detail)
        self.record(name, start, ok=False, end=end, command=command, reply=reply, error=detail, detail=stage_detail)
        self.failure = Failure(stage=name, kind=kind, detail=detail, reply=reply)
        return _StageFailedError()

    def deadline_passed(self) -> None:
        detail = f"the probe did not finish within its total time limit of {self.t.total:g}s"
        self.record(self.current, self.t0, ok=False, error=detail)
        self.failure = Failure(stage=self.current, kind=FailureKind.TIMEOUT, detail=detail)

    def result(self) -> ProbeResult:
        cfg = self.cfg
        return ProbeResult(
            host=cfg.host,
            port=cfg.port,
            tls_mode=cfg.tls.value,
            auth_method=cfg.auth.value,
            username=cfg.username if cfg.auth is not AuthMethod.NONE else None,
            mail_from=cfg.mail_from,
            rcpt_to=cfg.rcpt_to,
            started_at=self.started_at,
            duration_ms=_ms(self.t0, self.ended),
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

    # -- stages ------------------------------------------------------------------------------------------------

    async def run(self, *, recipient: str | None, message: bytes | None) -> None:
        await self.resolve()
        if self.cfg.tls is not TlsMode.NONE:
            self.context = await asyncio.to_thread(
                recording_context, self.cfg.tls_verify, self.cfg.ca_bundle_pem, self.recorder
            )
        await self.connect()
        await self.open()
        extensions = self.ehlo = await self.say_ehlo(StageName.EHLO)
        if self.cfg.tls is TlsMode.STARTTLS:
            await self.starttls(extensions)
            extensions = self.ehlo_after_tls = await self.say_ehlo(StageName.EHLO_AFTER_TLS)
        if self.cfg.auth is not AuthMethod.NONE:
            await self.authenticate(extensions)
        if self.cfg.mail_from is not None:
            await self.mail_from(self.cfg.mail_from)
            if recipient is not None:
                await self.rcpt_to(recipient)
        if message is not None:
            await self.data(message)
        else:
            await self.rset()
        await self.quit()

    async def resolve(self) -> None:
        self.current = StageName.RESOLVE
        start = time.perf_counter()
        try:
            ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            self.addresses = [self.host]
            self.record(StageName.RESOLVE, start, detail={"addresses": self.addresses, "literal": True})
            return
        try:
            async with asyncio.timeout(self.t.connect):
                addresses = await self.resolver(self.host, self.cfg.port)
        except ResolutionError as exc:
            raise self.failed(StageName.RESOLVE, start, exc.kind, exc.detail) from None
        except TimeoutError:
            raise self.failed(
                StageName.RESOLVE, start, FailureKind.DNS_TIMEOUT, f"{self.host}: no answer within {self.t.connect:g}s"
            ) from None
        if not addresses:
            raise self.failed(StageName.RESOLVE, start, FailureKind.DNS_NOT_FOUND, f"{self.host}: no address")
        self.addresses = addresses
        self.record(StageName.RESOLVE, start, detail={"addresses": addresses})

    async def connect(self) -> None:
        self.current = StageName.CONNECT
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        port = self.cfg.port
        attempts: list[str] = []
        kinds: list[FailureKind] = []
        for address in self.addresses[:_MAX_ADDRESSES_TRIED]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                async with asyncio.timeout(self.t.connect):
                    await loop.sock_connect(sock, (address, port))
            except TimeoutError:
                sock.close()
                kinds.append(FailureKind.CONNECT_TIMEOUT)
                attempts.append(f"{address} port {port}: no answer within {self.t.connect:g}s")
            except ConnectionRefusedError:
                sock.close()
                kinds.append(FailureKind.CONNECT_REFUSED)
                attempts.append(f"{address} port {port}: connection refused")
            except OSError as exc:
                sock.close()
                kinds.append(FailureKind.CONNECT_ERROR)
                attempts.append(f"{address} port {port}: {exc.strerror or exc}")
            except BaseException:
                sock.close()
                raise
            else:
                self.sock = sock
                self.address = address
                self.peer = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
                if self.helo is None:
                    self.helo = _address_literal(sock.getsockname()[0])
                self.record(StageName.CONNECT, start, detail={"address": address, "failed_attempts": attempts})
                return
        if kinds and all(k is FailureKind.CONNECT_REFUSED for k in kinds):
            kind = FailureKind.CONNECT_REFUSED
        elif FailureKind.CONNECT_TIMEOUT in kinds:
            kind = FailureKind.CONNECT_TIMEOUT
        else:
            kind = FailureKind.CONNECT_ERROR
        raise self.failed(StageName.CONNECT, start, kind, "; ".join(attempts) or "no address to connect to")

    def collect_tls(self) -> TlsFacts:
        rec = self.recorder
        cert = None
        if rec.chain_der:
            with contextlib.suppress(ValueError):
                cert = certificate_facts(rec.chain_der[0])
        obj = rec.ssl_object
        version = cipher = None
        bits = None
        if obj is not None:
            version = obj.version()
            info = obj.cipher()
            if info:
                cipher, bits = info[0], info[2]
        verified = obj is not None and self.cfg.tls_verify
        if verified:
            matched: bool | None = True
            chain: bool | None = True
        else:
            matched, chain = verify_error_meaning(rec.verify_code)
            if matched is not False and cert is not None:
                matched = hostname_matches(self.host, cert.sans)
        trust = "none" if not self.cfg.tls_verify else ("ca-bundle" if self.cfg.ca_bundle_pem else "system")
        self.tls = TlsFacts(
            hostname=self.host,
            verify=self.cfg.tls_verify,
            trust=trust,
            version=version,
            cipher=cipher,
            cipher_bits=bits,
            certificate=cert,
            chain_length=len(rec.chain_der) or None,
            hostname_matched=matched,
            chain_verified=chain,
            verify_code=rec.verify_code,
            verify_error=rec.verify_message,
        )
        return self.tls

    async def open(self) -> None:
        """Hand the socket to aiosmtplib; with implicit TLS that is the handshake, then the banner either way."""
        implicit = self.cfg.tls is TlsMode.IMPLICIT
        self.current = StageName.TLS if implicit else StageName.BANNER
        if self.sock is None or self.helo is None:
            raise RuntimeError("open() before connect()")
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            sock=self.sock,
            use_tls=implicit,
            start_tls=False,
            tls_context=self.context if implicit else None,
            validate_certs=self.cfg.tls_verify,
            local_hostname=self.helo,
            timeout=self.t.command,
        )
        self.sock = None  # aiosmtplib owns and closes it now
        self.smtp = smtp
        start = time.perf_counter()
        try:
            response = await smtp.connect(timeout=max(self.t.greeting, self.t.tls) if implicit else self.t.greeting)
        except aiosmtplib.SMTPConnectResponseError as exc:
            banner_start = self._implicit_handshake_done(start) if implicit else start
            self.banner = self.reply(exc.code, exc.message)
            raise self.failed(
                StageName.BANNER, banner_start, FailureKind.REPLY, "the server refused the session", reply=self.banner
            ) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPResponseException) as exc:
            await self._open_failed(exc, start, implicit)
        banner_start = self._implicit_handshake_done(start) if implicit else start
        self.banner = self.reply(response.code, response.message)
        self.record(StageName.BANNER, banner_start, reply=self.banner)

    def _implicit_handshake_done(self, start: float) -> float:
        end = self.recorder.finished or time.perf_counter()
        if self.recorder.finished is not None and self.tls is None:
            self.collect_tls()
            self.record(StageName.TLS, start, end=end, detail={"implicit": True})
        self.current = StageName.BANNER
        return end

    async def _open_failed(self, exc: Exception, start: float, implicit: bool) -> NoReturn:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if implicit and self.recorder.finished is None:
            self.implicit_tls_detected = None
            if isinstance(cause, ssl.SSLError):
                kind = tls_failure_kind(cause)
                if kind is FailureKind.NOT_TLS:
                    self.implicit_tls_detected = False
                self.collect_tls()
                raise self.failed(StageName.TLS, start, kind, describe_tls_error(cause))
            if isinstance(cause, TimeoutError):
                raise self.failed(
                    StageName.TLS,
                    start,
                    FailureKind.TIMEOUT,
                    f"no TLS handshake within {max(self.t.greeting, self.t.tls):g}s",
                )
            raise self.failed(
                StageName.TLS,
                start,
                FailureKind.DISCONNECTED,
                "the server closed the connection during the TLS handshake",
            )
        banner_start = self._implicit_handshake_done(start) if implicit else start
        if isinstance(cause, TimeoutError):
            failure = self.failed(
                StageName.BANNER,
                banner_start,
                FailureKind.TIMEOUT,
                f"connected, but no greeting within {self.t.greeting:g}s",
            )
            if not implicit:
                await self.sniff_tls()
            raise failure from None
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            raise self.failed(
                StageName.BANNER, banner_start, FailureKind.PROTOCOL, f"the greeting is not SMTP: {exc.message}"
            )
        raise self.failed(
            StageName.BANNER,
            banner_start,
            FailureKind.DISCONNECTED,
            "the server closed the connection before sending a greeting",
        )

    async def sniff_tls(self) -> None:
        """After a silent greeting: does this port answer a TLS ClientHello (an implicit-TLS port spoken to in
        plain text waits for the client just as a tarpit does)?"""
        if self.address is None:
            return
        start = time.perf_counter()
        writer = None
        try:
            async with asyncio.timeout(min(self.t.tls, _SNIFF_TIMEOUT)):
                _, writer = await asyncio.open_connection(
                    self.address, self.cfg.port, ssl=sniff_context(), server_hostname=self.host
                )
        except (OSError, TimeoutError):
            self.implicit_tls_detected = False
        else:
            self.implicit_tls_detected = True
        finally:
            if writer is not None:
                writer.close()
        self.record(StageName.TLS_SNIFF, start, detail={"speaks_tls": self.implicit_tls_detected})

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
                name, start, FailureKind.TIMEOUT, f"no reply within {self.t.command:g}s", command=display
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
        return await self.call(name, start, self.client.execute_command(*args, timeout=self.t.command), display=display)

    async def say_ehlo(self, name: StageName) -> Extensions:
        self.current = name
        start = time.perf_counter()
        helo = self.helo or "localhost"
        display = f"EHLO {helo}"
        response = await self.command(name, start, b"EHLO", helo.encode("ascii"), display=display)
        if response.code == 250:
            self.client.last_ehlo_response = response
            extensions = Extensions.from_keywords(self.client.esmtp_extensions, self.client.server_auth_methods)
            self.record(name, start, command=display, reply=self.reply(response.code, response.message.split("\n")[0]))
            return extensions
        if response.code in (500, 502):  # a server from before ESMTP
            old = await self.command(name, start, b"HELO", helo.encode("ascii"), display=f"HELO {helo}")
            if old.code == 250:
                self.client.last_helo_response = old
                self.record(name, start, command=f"HELO {helo}", reply=self.reply(old.code, old.message))
                return Extensions.from_keywords({}, [])
            response = old
        raise self.failed(
            name,
            start,
            FailureKind.REPLY,
            "the server refused EHLO",
            command=display,
            reply=self.reply(response.code, response.message),
        )

    async def starttls(self, ehlo: Extensions) -> None:
        self.current = StageName.STARTTLS
        start = time.perf_counter()
        if not ehlo.starttls:
            raise self.failed(
                StageName.STARTTLS,
                start,
                FailureKind.STARTTLS_UNAVAILABLE,
                "the server does not offer STARTTLS in its EHLO reply",
            )
        rec = self.recorder
        try:
            response = await self.client.starttls(
                server_hostname=self.host, tls_context=self.context, timeout=self.t.tls
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise self.failed(
                StageName.STARTTLS,
                start,
                FailureKind.REPLY,
                "the server refused STARTTLS",
                command="STARTTLS",
                reply=self.reply(exc.code, exc.message),
            ) from None
        except (ssl.SSLError, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if rec.started is None:
                kind = FailureKind.TIMEOUT if isinstance(exc, TimeoutError) else FailureKind.DISCONNECTED
                text = f"no reply within {self.t.tls:g}s" if isinstance(exc, TimeoutError) else "connection lost"
                raise self.failed(StageName.STARTTLS, start, kind, text, command="STARTTLS") from None
            began = rec.started
            self.record(StageName.STARTTLS, start, end=began, command="STARTTLS", reply=Reply(220, None, ""))
            self.current = StageName.TLS
            self.collect_tls()
            if isinstance(exc, ssl.SSLError):
                raise self.failed(StageName.TLS, began, tls_failure_kind(exc), describe_tls_error(exc)) from None
            if isinstance(exc, TimeoutError):
                raise self.failed(
                    StageName.TLS, began, FailureKind.TIMEOUT, f"no TLS handshake within {self.t.tls:g}s"
                ) from None
            raise self.failed(
                StageName.TLS,
                began,
                FailureKind.DISCONNECTED,
                "the server closed the connection during the TLS handshake",
            ) from None
        self.record(
            StageName.STARTTLS,
            start,
            end=rec.started,
            command="STARTTLS",
            reply=self.reply(response.code, response.message),
        )
        self.collect_tls()
        self.record(StageName.TLS, rec.started or start, end=rec.finished, detail={"implicit": False})

    async def authenticate(self, extensions: Extensions) -> None:
        self.current = StageName.AUTH
        start = time.perf_counter()
        mechanism = self.cfg.auth.sasl_name
        encrypted = self.recorder.ssl_object is not None
        offered = extensions.auth_mechanisms
        if mechanism not in offered:
            facts = {"offered": offered, "encrypted": encrypted, "starttls_offered": extensions.starttls}
            if not offered and not encrypted and extensions.starttls:
                text = "the server offers AUTH only after STARTTLS"
            elif not offered:
                text = "the server offers no AUTH at all"
            else:
                text = f"the server does not offer AUTH {mechanism} (it offers {' '.join(offered)})"
            raise self.failed(StageName.AUTH, start, FailureKind.AUTH_UNAVAILABLE, text, stage_detail=facts)
        username = self.cfg.username or ""
        if self.cfg.auth is AuthMethod.XOAUTH2:
            await self.xoauth2(username)
            return
        if self.cfg.password is None:
            raise RuntimeError("password authentication without a password")
        password = self.cfg.password.reveal()
        self.auth_mechanism = mechanism
        display = f"AUTH {mechanism} {_HIDDEN}"
        methods = {
            AuthMethod.PLAIN: self.client.auth_plain,
            AuthMethod.LOGIN: self.client.auth_login,
            AuthMethod.CRAM_MD5: self.client.auth_crammd5,
        }
        response = await self.call(
            StageName.AUTH,
            start,
            methods[self.cfg.auth](username, password, timeout=self.t.command),
            display=display,
            refused=(aiosmtplib.SMTPAuthenticationError, "the server refused the credentials"),
        )
        self.record(StageName.AUTH, start, command=display, reply=self.reply(response.code, response.message))

    async def xoauth2(self, username: str) -> None:
        source = self.cfg.token
        if source is None:
            raise RuntimeError("xoauth2 without a token source")
        self.current = StageName.TOKEN
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.t.command):
                token = await source.get_token()
        except TokenRequestError as exc:
            facts = {
                "status": exc.status,
                "error": exc.error,
                "description": exc.description,
                "transient": exc.transient,
            }
            raise self.failed(StageName.TOKEN, start, FailureKind.TOKEN_REQUEST, str(exc), stage_detail=facts) from None
        except TimeoutError:
            raise self.failed(
                StageName.TOKEN, start, FailureKind.TIMEOUT, f"no token within {self.t.command:g}s"
            ) from None
        self._add_secret(token.reveal())
        if source.kind != "static":
            self.record(StageName.TOKEN, start, detail={"source": source.kind})
        self.current = StageName.AUTH
        start = time.perf_counter()
        self.auth_mechanism = "XOAUTH2"
        display = f"AUTH XOAUTH2 {_HIDDEN}"
        blob = base64.b64encode(
            b"user=" + username.encode() + b"\x01auth=Bearer " + token.reveal().encode() + b"\x01\x01"
        )
        response = await self.command(StageName.AUTH, start, b"AUTH", b"XOAUTH2", blob, display=display)
        challenge: dict[str, str] | None = None
        if response.code == 334:
            challenge = self._xoauth2_challenge(response.message)
            response = await self.command(StageName.AUTH, start, b"", display="(empty line)")
        reply = self.reply(response.code, response.message)
        if response.code != 235:
            source.invalidate()
            raise self.failed(
                StageName.AUTH,
                start,
                FailureKind.REPLY,
                "the server refused the access token",
                command=display,
                reply=reply,
                stage_detail={"challenge": challenge} if challenge else None,
            )
        self.record(StageName.AUTH, start, command=display, reply=reply)

    def _xoauth2_challenge(self, message: str) -> dict[str, str] | None:
        """The JSON error some servers (Gmail) send in a 334 before refusing a token: status, schemes, scope."""
        try:
            decoded = json.loads(base64.b64decode(message.strip(), validate=True))
        except ValueError:
            return None
        if not isinstance(decoded, dict):
            return None
        return {k: self.scrub(str(decoded[k])) for k in ("status", "schemes", "scope") if k in decoded}

    def _envelope_params(self, address: str) -> list[bytes]:
        extensions = self.ehlo_after_tls or self.ehlo
        if not address.isascii() and extensions is not None and extensions.smtputf8:
            return [b"SMTPUTF8"]
        return []

    async def mail_from(self, address: str) -> None:
        self.current = StageName.MAIL
        start = time.perf_counter()
        params = self._envelope_params(address)
        display = f"MAIL FROM:<{address}>" + "".join(" " + p.decode() for p in params)
        arg = b"FROM:<" + address.encode() + b">"
        response = await self.command(StageName.MAIL, start, b"MAIL", arg, *params, display=display)
        reply = self.reply(response.code, response.message)
        if response.code != 250:
            raise self.failed(
                StageName.MAIL, start, FailureKind.REPLY, "the server refused the sender", command=display, reply=reply
            )
        self.record(StageName.MAIL, start, command=display, reply=reply)

    async def rcpt_to(self, address: str) -> None:
        self.current = StageName.RCPT
        start = time.perf_counter()
        display = f"RCPT TO:<{address}>"
        response = await self.command(
            StageName.RCPT, start, b"RCPT", b"TO:<" + address.encode() + b">", display=display
        )
        reply = self.reply(response.code, response.message)
        if response.code not in (250, 251):
            raise self.failed(
                StageName.RCPT,
                start,
                FailureKind.REPLY,
                "the server refused the recipient",
                command=display,
                reply=reply,
            )
        self.record(StageName.RCPT, start, command=display, reply=reply)

    async def data(self, message: bytes) -> None:
        self.current = StageName.DATA
        start = time.perf_counter()
        display = f"DATA ({len(message)} bytes)"
        try:
            response = await self.call(
                StageName.DATA,
                start,
                self.client.data(message, timeout=self.t.command),
                display=display,
                refused=(aiosmtplib.SMTPDataError, "the server refused the message"),
            )
        except _StageFailedError:
            if self.failure is not None and self.failure.kind is FailureKind.REPLY:
                self.data_reply = self.failure.reply
            raise
        self.data_reply = self.reply(response.code, response.message)
        self.record(StageName.DATA, start, command=display, reply=self.data_reply)

    async def rset(self) -> None:
        """Drop the envelope. A refusal here does not fail the probe: the checks that matter are done."""
        await self._closing_command(StageName.RSET, b"RSET", expect=250)

    async def quit(self) -> None:
        """Say goodbye; like RSET, a server that hangs up rudely here does not fail the probe."""
        if self.client.is_connected:
            await self._closing_command(StageName.QUIT, b"QUIT", expect=221)

    async def _closing_command(self, name: StageName, verb: bytes, *, expect: int) -> None:
        """RSET and QUIT: recorded, never a failure of the probe."""
        self.current = name
        start = time.perf_counter()
        command = verb.decode()
        try:
            response = await self.client.execute_command(verb, timeout=self.t.command)
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.record(name, start, ok=False, command=command, error=type(exc).__name__)
            return
        reply = self.reply(response.code, response.message)
        self.record(name, start, ok=response.code == expect, command=command, reply=reply)


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
) -> _Session:
    queued = time.perf_counter()
    async with _slot(limiter):
        session = _Session(config, resolver or system_resolver)
        session.queued_ms = _ms(queued)
        try:
            async with asyncio.timeout(config.timeouts.total):
                await session.run(recipient=recipient, message=message)
        except _StageFailedError:
            if session.smtp is not None and session.smtp.is_connected:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(min(1.0, config.timeouts.command)):
                        await session.smtp.execute_command(b"QUIT")
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
