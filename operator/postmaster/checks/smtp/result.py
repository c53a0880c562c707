"""What a probe saw, stage by stage: a plain, JSON-serialisable record with no credential in it."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


class StageName(enum.StrEnum):
    """The steps of an SMTP session, in the order a probe takes them."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"  # a TLS handshake: at once (implicit TLS) or after STARTTLS
    BANNER = "banner"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    EHLO_AFTER_TLS = "ehlo-after-tls"
    TOKEN = "token"  # noqa: S105 - fetching an OAuth2 access token
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    RSET = "rset"
    QUIT = "quit"
    TLS_SNIFF = "tls-sniff"  # diagnosis: does this port speak TLS from the first byte?


class FailureKind(enum.StrEnum):
    """What went wrong, before any judgement about why or what to do (that is :mod:`.classify`'s job)."""

    DNS_NOT_FOUND = "dns-not-found"
    DNS_ERROR = "dns-error"
    DNS_TIMEOUT = "dns-timeout"
    CONNECT_REFUSED = "connect-refused"
    CONNECT_TIMEOUT = "connect-timeout"
    CONNECT_ERROR = "connect-error"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    NOT_TLS = "not-tls"
    TLS_CERTIFICATE = "tls-certificate"
    TLS_HANDSHAKE = "tls-handshake"
    STARTTLS_UNAVAILABLE = "starttls-unavailable"
    AUTH_UNAVAILABLE = "auth-unavailable"
    TOKEN_REQUEST = "token-request"  # noqa: S105
    REPLY = "reply"
    PROTOCOL = "protocol"


@dataclass(frozen=True)
class Reply:
    """One server reply: the 3-digit code, the RFC 3463 enhanced status code if given, and the text.

    Multi-line replies are joined with spaces and the enhanced code is taken off each line, so ``text`` reads as the
    server's sentence.
    """

    code: int
    enhanced: str | None
    text: str

    @classmethod
    def parse(cls, code: int, message: str) -> Reply:
        enhanced: str | None = None
        lines = []
        for raw in message.split("\n"):
            line = raw.strip()
            match = _ENHANCED.match(line)
            if match:
                enhanced = enhanced or match.group(0)
                line = line[match.end() :].strip()
            if line:
                lines.append(line)
        return cls(code=code, enhanced=enhanced, text=" ".join(lines))

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return " ".join(str(p) for p in (self.code, self.enhanced, self.text) if p)


@dataclass(frozen=True)
class Stage:
    """One step: how long it took, what was sent (credentials shown as ``<hidden>``) and what came back."""

    name: StageName
    ok: bool
    duration_ms: float
    command: str | None = None
    reply: Reply | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Extensions:
    """The ESMTP extensions one EHLO reply advertised."""

    keywords: dict[str, str]
    starttls: bool
    auth_mechanisms: list[str]
    size: int | None
    pipelining: bool
    smtputf8: bool
    eightbitmime: bool
    enhancedstatuscodes: bool
    chunking: bool

    @classmethod
    def from_keywords(cls, keywords: dict[str, str], auth: list[str]) -> Extensions:
        upper = {k.upper(): v for k, v in keywords.items()}
        size: int | None = None
        if "SIZE" in upper:
            try:
                size = int(upper["SIZE"].split()[0]) if upper["SIZE"].strip() else 0
            except ValueError:
                size = None
        mechanisms = list(dict.fromkeys(m.upper() for m in auth))
        return cls(
            keywords=upper,
            starttls="STARTTLS" in upper,
            auth_mechanisms=mechanisms,
            size=size,
            pipelining="PIPELINING" in upper,
            smtputf8="SMTPUTF8" in upper,
            eightbitmime="8BITMIME" in upper,
            enhancedstatuscodes="ENHANCEDSTATUSCODES" in upper,
            chunking="CHUNKING" in upper,
        )


@dataclass(frozen=True)
class CertificateFacts:
    """The server's (leaf) certificate, read whether or not it verified."""

    subject: str
    common_name: str | None
    sans: list[str]
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    days_left: int
    expired: bool
    not_yet_valid: bool
    self_signed: bool
    serial: str
    sha256: str


@dataclass(frozen=True)
class TlsFacts:
    """The TLS session and what was checked about the certificate.

    ``hostname_matched``/``chain_verified`` are None when not determined (verification off, or stopped at another
    error). ``verify_error`` is OpenSSL's reason when verification failed.
    """

    hostname: str
    verify: bool
    trust: str  # "system", "ca-bundle" or "none"
    version: str | None = None
    cipher: str | None = None
    cipher_bits: int | None = None
    certificate: CertificateFacts | None = None
    chain_length: int | None = None
    hostname_matched: bool | None = None
    chain_verified: bool | None = None
    verify_code: int | None = None
    verify_error: str | None = None


@dataclass(frozen=True)
class Failure:
    """Where the probe stopped and what it saw there."""

    stage: StageName
    kind: FailureKind
    detail: str
    reply: Reply | None = None


@dataclass(frozen=True)
class ProbeResult:
    """The whole probe. ``failure`` is None when every stage passed."""

    host: str
    port: int
    tls_mode: str
    auth_method: str
    username: str | None
    mail_from: str | None
    rcpt_to: str | None
    started_at: datetime.datetime
    duration_ms: float
    queued_ms: float
    addresses: list[str]
    peer: str | None
    banner: Reply | None
    ehlo: Extensions | None
    ehlo_after_tls: Extensions | None
    tls: TlsFacts | None
    auth_mechanism: str | None
    token_source: str | None
    implicit_tls_detected: bool | None
    stages: list[Stage]
    failure: Failure | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def stage(self, name: StageName) -> Stage | None:
        """The last stage of that name, if the probe got there."""
        for stage in reversed(self.stages):
            if stage.name == name:
                return stage
        return None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> dict[str, Any]:
        """A few camelCase facts small enough for a resource's status: when, how long, where it stopped, TLS and
        certificate expiry, what AUTH the server offers."""
        cert = self.tls.certificate if self.tls is not None else None
        extensions = self.ehlo_after_tls or self.ehlo
        facts: dict[str, Any] = {
            "checkedAt": to_jsonable(self.started_at),
            "durationMs": round(self.duration_ms),
            "address": self.peer,
            "banner": str(self.banner) if self.banner is not None else None,
            "failedStage": self.failure.stage.value if self.failure is not None else None,
            "reply": str(self.failure.reply) if self.failure is not None and self.failure.reply else None,
            "tlsVersion": self.tls.version if self.tls is not None else None,
            "certificateNotAfter": to_jsonable(cert.not_after) if cert is not None else None,
            "certificateDaysLeft": cert.days_left if cert is not None else None,
            "authMechanisms": extensions.auth_mechanisms if extensions is not None else [],
        }
        return {k: v for k, v in facts.items() if v not in (None, [])}


@dataclass(frozen=True)
class SendResult:
    """A test message: the probe of the session that carried it, and what the server said to the message."""

    probe: ProbeResult
    recipient: str
    message_id: str
    accepted: bool
    reply: Reply | None
    queue_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and datetimes into plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} is not part of a probe result")
