"""What a probe is told: where the server is, how to speak TLS, how to log in, which addresses to try."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography import x509

from postmaster.checks.oauth2 import StaticToken, TokenSource
from postmaster.checks.secret import Secret


class TlsMode(enum.StrEnum):
    """How the connection gets encrypted.

    ``starttls``: plain TCP, then the STARTTLS command (submission, port 587; also 25 and 2525).
    ``implicit``: TLS from the first byte (SMTPS, port 465).
    ``none``: never encrypted; only for relays inside a trusted network.
    """

    STARTTLS = "starttls"
    IMPLICIT = "implicit"
    NONE = "none"


class AuthMethod(enum.StrEnum):
    """The SASL mechanism used for SMTP AUTH, or ``none`` for servers that relay by client address."""

    PLAIN = "plain"
    LOGIN = "login"
    CRAM_MD5 = "cram-md5"
    XOAUTH2 = "xoauth2"
    NONE = "none"

    @property
    def sasl_name(self) -> str:
        """The mechanism's name as servers advertise it in EHLO (``AUTH PLAIN LOGIN ...``)."""
        return self.value.upper()


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each network step; ``total`` bounds the whole probe whatever the steps add up to.

    ``connect`` covers name resolution and each TCP connection attempt, ``greeting`` the server's 220 banner,
    ``tls`` one TLS handshake (and the STARTTLS reply before it), ``command`` each other reply.
    """

    connect: float = 10.0
    greeting: float = 30.0
    tls: float = 15.0
    command: float = 30.0
    total: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "greeting", "tls", "command", "total"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"timeouts.{name} must be positive")

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        """Every step gets ``seconds``; the whole probe gets ten times that."""
        return cls(connect=seconds, greeting=seconds, tls=seconds, command=seconds, total=seconds * 10)


def _check_address(name: str, value: str | None) -> None:
    if value is None:
        return
    if not value or any(c in value for c in "<>\r\n\t ") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{name} must be a bare address like user@example.com (no spaces, <>, or control characters)")
    if "@" not in value:
        raise ValueError(f"{name} must contain @")


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """Everything one probe needs. Credentials are :class:`Secret` values or a :class:`TokenSource`, never plain str.

    ``ca_bundle_pem``: PEM certificates to trust instead of the system store (for servers with a private CA).
    ``helo_name``: the name sent with EHLO; by default the address literal of the local end, e.g. ``[10.1.2.3]``.
    ``mail_from``: the provider's sender address, tried with MAIL FROM to confirm the server accepts it.
    ``rcpt_to``: optionally tried with RCPT TO (nothing is sent; the envelope is reset).
    """

    host: str
    port: int = 587
    tls: TlsMode = TlsMode.STARTTLS
    tls_verify: bool = True
    ca_bundle_pem: str | None = None
    auth: AuthMethod = AuthMethod.NONE
    username: str | None = None
    password: Secret | None = None
    token: TokenSource | None = None
    mail_from: str | None = None
    rcpt_to: str | None = None
    helo_name: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        host = self.host
        if not host or any(c.isspace() or ord(c) < 32 for c in host) or "/" in host:
            raise ValueError("host must be a host name or IP address")
        if not 0 < self.port < 65536:
            raise ValueError("port must be between 1 and 65535")
        object.__setattr__(self, "tls", TlsMode(self.tls))
        object.__setattr__(self, "auth", AuthMethod(self.auth))
        if self.password is not None and not isinstance(self.password, Secret):
            raise TypeError("password must be a Secret")
        if isinstance(self.token, Secret):
            object.__setattr__(self, "token", StaticToken(self.token))
        _check_address("mail_from", self.mail_from)
        _check_address("rcpt_to", self.rcpt_to)
        if self.helo_name is not None and (
            not self.helo_name or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in self.helo_name)
        ):
            raise ValueError("helo_name must be one word without spaces or control characters")
        if self.auth is not AuthMethod.NONE and not self.username:
            raise ValueError(f"auth {self.auth.value} needs a username")
        if self.auth is AuthMethod.XOAUTH2:
            if self.token is None:
                raise ValueError("auth xoauth2 needs a token or a client-credentials token source")
            if self.password is not None:
                raise ValueError("auth xoauth2 uses a token, not a password")
        elif self.auth is not AuthMethod.NONE:
            if self.password is None:
                raise ValueError(f"auth {self.auth.value} needs a password")
            if self.token is not None:
                raise ValueError(f"auth {self.auth.value} uses a password, not a token")
        if self.ca_bundle_pem is not None:
            try:
                certificates = x509.load_pem_x509_certificates(self.ca_bundle_pem.encode())
            except ValueError:
                certificates = []
            if not certificates:
                raise ValueError("ca_bundle_pem must hold one or more PEM certificates")
