"""From a probe result to a condition: a stable CamelCase reason, a message that says what to do, and whether the
problem is transient (condition ``Unknown``, retried with backoff), permanent (``False``) and whether only a person can
fix it (``Stalled``). Pure: no I/O, no clock except the ``now`` passed in for certificate expiry.

Per-provider advice comes in as :class:`ProbeHints` data from the provider catalog; without hints the messages give
the general advice that holds for most providers.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass, field
from typing import Any

from postmaster.checks.smtp.result import Failure, FailureKind, ProbeResult, Reply, StageName
from postmaster.checks.smtp.tls import untrusted


class Reason(enum.StrEnum):
    """Reasons for the ``SMTPReachable`` condition. Stable: dashboards and alerts match on them."""

    SUCCEEDED = "Succeeded"
    DNS_RESOLUTION_FAILED = "DNSResolutionFailed"
    CONNECTION_REFUSED = "ConnectionRefused"
    CONNECTION_TIMED_OUT = "ConnectionTimedOut"
    CONNECTION_FAILED = "ConnectionFailed"
    CONNECTION_REJECTED = "ConnectionRejected"
    TLS_MISMATCH = "TLSMismatch"
    TLS_CERTIFICATE_INVALID = "TLSCertificateInvalid"
    TLS_HANDSHAKE_FAILED = "TLSHandshakeFailed"
    STARTTLS_REQUIRED = "StartTLSRequired"
    AUTHENTICATION_REQUIRED = "AuthenticationRequired"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    BASIC_AUTH_DISABLED = "BasicAuthDisabled"
    AUTH_MECHANISM_UNSUPPORTED = "AuthMechanismUnsupported"
    TOKEN_EXPIRED = "TokenExpired"  # noqa: S105
    TOKEN_REQUEST_FAILED = "TokenRequestFailed"  # noqa: S105
    RATE_LIMITED = "RateLimited"
    SENDER_REJECTED = "SenderRejected"
    RECIPIENT_REJECTED = "RecipientRejected"
    MESSAGE_REJECTED = "MessageRejected"
    SERVER_DISCONNECTED = "ServerDisconnected"
    SERVER_TEMPORARY_FAILURE = "ServerTemporaryFailure"
    PROTOCOL_ERROR = "ProtocolError"


@dataclass(frozen=True)
class ProbeHints:
    """Provider-specific sentences appended to messages, filled from the provider catalog.

    Each is one or two sentences in the provider's own terms, e.g. ``auth="Gmail needs an app password with 2-Step
    Verification."`` or ``rate_limit="Microsoft 365 allows 30 messages per minute."``.
    """

    provider: str | None = None
    auth: str | None = None
    rate_limit: str | None = None
    sender: str | None = None
    tls: str | None = None
    connection: str | None = None
    oauth2: str | None = None


@dataclass(frozen=True)
class Classification:
    """The verdict on one probe. ``status`` is the condition status: ``True``, ``False`` or ``Unknown``."""

    reason: Reason
    message: str
    status: str
    transient: bool
    needs_person: bool
    stage: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is Reason.SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "message": self.message,
            "status": self.status,
            "transient": self.transient,
            "needsPerson": self.needs_person,
            "stage": self.stage,
            "warnings": list(self.warnings),
        }


_EXPIRY_WARNING_DAYS = 21
_STATIC_TOKEN = "static"  # noqa: S105 - the kind of token source, not a token
_TLS_PORTS = "Port 587 typically requires STARTTLS, port 465 requires SSL (implicit TLS)."
_RATE_WORDS = ("rate", "throttl", "too many", "exceeded", "quota", "limit")
_SENDER_WORDS = (
    "not verified",
    "verified sender",
    "sender identity",
    "sender address rejected",
    "not owned",
    "send as",
    "sendas",
    "not authorized to send",
    "not allowed to send",
    "from address",
    "unauthenticated sender",
    "sender is not",
)


def _said(reply: Reply | None) -> str:
    return f' (server said: "{reply}")' if reply is not None else ""


def _with(text: str, *extra: str | None) -> str:
    parts = [text.strip()]
    parts.extend(e.strip() for e in extra if e)
    return " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts if p)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _verdict(
    reason: Reason,
    message: str,
    *,
    transient: bool,
    needs_person: bool,
    stage: StageName | None,
    warnings: list[str] | None = None,
) -> Classification:
    status = "True" if reason is Reason.SUCCEEDED else ("Unknown" if transient else "False")
    return Classification(
        reason=reason,
        message=message,
        status=status,
        transient=transient,
        needs_person=needs_person,
        stage=stage.value if stage is not None else None,
        warnings=warnings or [],
    )


def _warnings(result: ProbeResult, now: datetime.datetime) -> list[str]:
    warnings: list[str] = []
    tls = result.tls
    if tls is not None and tls.certificate is not None and not tls.certificate.expired:
        days = (tls.certificate.not_after - now).days
        if days < _EXPIRY_WARNING_DAYS:
            warnings.append(f"The server's certificate expires in {days} days ({tls.certificate.not_after:%Y-%m-%d}).")
    if tls is not None and not tls.verify:
        warnings.append("tlsVerify is off: the server's identity is not checked.")
    if result.tls_mode == "none" and result.auth_method != "none":
        warnings.append("Credentials go over an unencrypted connection (tls: none).")
    return warnings


def classify(
    result: ProbeResult, hints: ProbeHints | None = None, *, now: datetime.datetime | None = None
) -> Classification:
    """The condition for ``result``; ``hints`` add the provider's own advice to the message."""
    hints = hints or ProbeHints()
    now = now or datetime.datetime.now(datetime.UTC)
    warnings = _warnings(result, now)
    failure = result.failure
    if failure is None:
        return _verdict(
            Reason.SUCCEEDED,
            _success_message(result),
            transient=False,
            needs_person=False,
            stage=None,
            warnings=warnings,
        )
    verdict = (
        _network(result, failure, hints)
        or _tls(result, failure, hints, now)
        or _token_request(result, failure, hints)
        or _reply(result, failure, hints)
        or _session(result, failure, hints)
    )
    return Classification(
        reason=verdict.reason,
        message=verdict.message,
        status=verdict.status,
        transient=verdict.transient,
        needs_person=verdict.needs_person,
        stage=verdict.stage,
        warnings=warnings,
    )


def _success_message(result: ProbeResult) -> str:
    parts = [f"{result.host} port {result.port} answered"]
    if result.tls is not None and result.tls.version:
        parts.append(f"over {result.tls.version}")
    if result.auth_mechanism:
        parts.append(f"and accepted AUTH {result.auth_mechanism} for {result.username}")
    text = " ".join(parts)
    if result.mail_from:
        text += f"; the sender {result.mail_from} is accepted"
    if result.rcpt_to:
        text += f", as is the recipient {result.rcpt_to}"
    return f"{text}."  # no timing: the verdict must read the same from one probe to the next


def _network(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification | None:
    host, port, stage = result.host, result.port, failure.stage
    kind = failure.kind
    if kind is FailureKind.DNS_NOT_FOUND:
        return _verdict(
            Reason.DNS_RESOLUTION_FAILED,
            _with(f"The name {host} does not resolve ({failure.detail})", "Check the host field for a typo"),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if kind in (FailureKind.DNS_ERROR, FailureKind.DNS_TIMEOUT):
        return _verdict(
            Reason.DNS_RESOLUTION_FAILED,
            _with(
                f"Could not resolve {host} right now ({failure.detail})",
                "The probe retries; if this persists, check the cluster's DNS",
            ),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if kind is FailureKind.CONNECT_REFUSED:
        return _verdict(
            Reason.CONNECTION_REFUSED,
            _with(
                f"Nothing accepts connections on {host} port {port} ({failure.detail})",
                "Check the port: mail submission is 587 (STARTTLS) or 465 (implicit TLS); port 25 is often blocked",
                hints.connection,
            ),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if kind is FailureKind.CONNECT_TIMEOUT:
        return _verdict(
            Reason.CONNECTION_TIMED_OUT,
            _with(
                f"No answer from {host} port {port} ({failure.detail})",
                "A firewall, the cluster's egress rules (NetworkPolicy, cloud security groups) or the provider may "
                "drop this traffic; many clouds block outbound port 25, so use 587 or 465",
                hints.connection,
            ),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if kind is FailureKind.CONNECT_ERROR:
        return _verdict(
            Reason.CONNECTION_FAILED,
            _with(
                f"Could not connect to {host} port {port} ({failure.detail})",
                "Check the cluster's network route to the provider",
                hints.connection,
            ),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    return None


def _tls(result: ProbeResult, failure: Failure, hints: ProbeHints, now: datetime.datetime) -> Classification | None:
    host, port, stage, kind = result.host, result.port, failure.stage, failure.kind
    if kind is FailureKind.NOT_TLS:
        return _verdict(
            Reason.TLS_MISMATCH,
            _with(
                f"Port {port} of {host} answered in plain text, not TLS: tls is implicit, but this port expects "
                "STARTTLS (or no TLS)",
                _TLS_PORTS,
                "Set tls: starttls for this port, or use the provider's implicit-TLS port",
                hints.tls,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if stage is StageName.BANNER and kind is FailureKind.TIMEOUT and result.implicit_tls_detected:
        return _verdict(
            Reason.TLS_MISMATCH,
            _with(
                f"Port {port} of {host} speaks TLS from the first byte (implicit TLS, SMTPS), but tls is "
                f"{result.tls_mode}: the server waited for a TLS handshake while the probe waited for a greeting",
                _TLS_PORTS,
                "Set tls: implicit for this port, or use the provider's STARTTLS port",
                hints.tls,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if kind is FailureKind.STARTTLS_UNAVAILABLE:
        return _verdict(
            Reason.TLS_MISMATCH,
            _with(
                f"The server on {host} port {port} does not offer STARTTLS, so tls: starttls cannot work here",
                _TLS_PORTS,
                "Use the provider's submission port; tls: none is only for a relay inside a trusted network",
                hints.tls,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if kind is FailureKind.TLS_CERTIFICATE:
        return _verdict(
            Reason.TLS_CERTIFICATE_INVALID,
            _certificate_message(result, failure, now),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if kind is FailureKind.TLS_HANDSHAKE:
        return _verdict(
            Reason.TLS_HANDSHAKE_FAILED,
            _with(
                f"The TLS handshake with {host} port {port} failed ({failure.detail})",
                "The server may want a TLS version or cipher this client does not offer, or the port may not speak "
                "TLS the way tls says",
                _TLS_PORTS,
                hints.tls,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    return None


def _certificate_message(result: ProbeResult, failure: Failure, now: datetime.datetime) -> str:
    tls = result.tls
    host = result.host
    problems: list[str] = []
    fixes: list[str] = []
    cert = tls.certificate if tls is not None else None
    if cert is not None and cert.expired:
        days = (now - cert.not_after).days
        problems.append(f"it expired on {cert.not_after:%Y-%m-%d} ({days} days ago)")
        fixes.append("the server's operator must renew it")
    if cert is not None and cert.not_yet_valid:
        problems.append(f"it is not valid before {cert.not_before:%Y-%m-%d} (check this machine's clock too)")
    if tls is not None and tls.hostname_matched is False:
        names = ", ".join(s.split(":", 1)[1] for s in (cert.sans if cert else [])) or (
            cert.common_name if cert and cert.common_name else "other names"
        )
        problems.append(f"it is for {names}, not {host}")
        fixes.append("use a host name the certificate names (the provider's documented SMTP host)")
    if tls is not None and untrusted(tls.verify_code):
        issuer = cert.issuer if cert else "an unknown issuer"
        kind = "self-signed" if cert is not None and cert.self_signed else f"issued by {issuer}"
        problems.append(f"it is {kind}, which is not a trusted certificate authority here ({tls.verify_error})")
        fixes.append("if the server uses a private CA, give its certificate as the CA bundle")
    if not problems:
        problems.append(failure.detail)
    text = f"The TLS certificate of {host} is not valid: " + "; ".join(problems)
    return _with(
        text,
        _sentence("; ".join(fixes)) if fixes else None,
        "Turning tlsVerify off hides this; do that only for a test server",
    )


def _token_request(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification | None:
    if failure.kind is not FailureKind.TOKEN_REQUEST:
        return None
    stage = result.stage(StageName.TOKEN)
    facts = stage.detail if stage is not None else {}
    error = str(facts.get("error") or "")
    transient = bool(facts.get("transient"))
    if error == "invalid_client":
        fix = (
            "Check the client id and client secret in the credentials Secret (the secret's value, not its id); "
            "client secrets expire at the end of the lifetime chosen when they were created"
        )
    elif error == "invalid_scope":
        fix = "Check the scope; Microsoft 365 SMTP wants https://outlook.office365.com/.default"
    elif error == "unauthorized_client":
        fix = "The application is not allowed to use the client-credentials grant; check its registration"
    elif error in ("invalid_request", "invalid_grant"):
        fix = "Check the token URL (tenant) and the client id"
    elif transient:
        fix = "The identity provider did not answer properly; the probe retries"
    else:
        fix = "Check the OAuth2 client-credentials settings"
    return _verdict(
        Reason.TOKEN_REQUEST_FAILED,
        _with(f"Could not get an OAuth2 access token: {failure.detail}", fix, hints.oauth2),
        transient=transient,
        needs_person=not transient,
        stage=failure.stage,
    )


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


def _reply(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification | None:
    reply = failure.reply
    stage = failure.stage
    if failure.kind is FailureKind.AUTH_UNAVAILABLE:
        return _auth_unavailable(result, failure, hints)
    if reply is None:
        return None
    text = reply.text.lower()
    enhanced = reply.enhanced or ""
    said = _said(reply)

    if enhanced in ("5.7.139", "5.7.30") or _has(
        text, ("basic authentication is disabled", "smtpclientauthentication is disabled", "basic auth")
    ):
        return _verdict(
            Reason.BASIC_AUTH_DISABLED,
            _with(
                f"The server no longer accepts a password for {result.username}{said}",
                "Microsoft 365 turns off basic authentication: either enable Authenticated SMTP for the mailbox "
                "(Microsoft 365 admin center, or Set-CASMailbox -SmtpClientAuthenticationDisabled $false) and use an "
                "app password (needs multi-factor authentication on the account), or switch auth.method to xoauth2 "
                "with an OAuth2 client-credentials block (scope https://outlook.office365.com/.default)",
                hints.auth,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if enhanced == "5.7.64" or "tenantattribution" in text:
        return _verdict(
            Reason.SENDER_REJECTED,
            _with(
                f"Microsoft 365 could not attribute this connection to your organisation{said}",
                "The connector that relays by IP address or certificate does not match this client: authenticate "
                "with SMTP AUTH on port 587 instead, or fix the inbound connector's IP addresses or certificate domain",
                hints.sender,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if (
        reply.code == 530 and (enhanced == "5.7.0" or "starttls" in text) and "authentication required" not in text
    ) or (reply.code == 538 or enhanced == "5.7.11"):
        where = stage.value.upper() if stage is not StageName.AUTH else "AUTH"
        return _verdict(
            Reason.STARTTLS_REQUIRED,
            _with(
                f"The server requires encryption before {where}{said}",
                f"Set tls: starttls (tls is {result.tls_mode} now), or tls: implicit on the provider's port 465",
                hints.tls,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if result.auth_method == "xoauth2" and stage is StageName.AUTH and reply.code >= 500:
        return _token_rejected(result, failure, hints)
    if _has(text, _RATE_WORDS) and (reply.transient or _has(text, ("quota", "sending limit", "rate"))):
        return _verdict(
            Reason.RATE_LIMITED,
            _with(
                f"The server is throttling this client{said}",
                hints.rate_limit
                or "Set rateLimit and dailyLimit to the provider's sending limits; the probe retries later",
            ),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if reply.code == 530 or (enhanced in ("5.7.57", "5.7.1") and "authenticat" in text):
        return _verdict(
            Reason.AUTHENTICATION_REQUIRED,
            _with(
                f"The server wants SMTP AUTH before {stage.value.upper()}{said}",
                "Set auth.method and the credentials Secret",
                hints.auth,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if reply.transient:
        return _verdict(
            Reason.SERVER_TEMPORARY_FAILURE,
            _with(f"The server answered with a temporary failure at {stage.value.upper()}{said}", "The probe retries"),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if stage is StageName.AUTH:
        if reply.code == 504 or enhanced in ("5.5.4", "5.7.4") or "unrecognized authentication" in text:
            return _mechanism_unsupported(result, failure, hints)
        return _authentication_failed(result, failure, hints)
    if stage in (StageName.BANNER, StageName.EHLO, StageName.EHLO_AFTER_TLS):
        what = "the connection" if stage is StageName.BANNER else "the EHLO greeting"
        return _verdict(
            Reason.CONNECTION_REJECTED,
            _with(
                f"The server refused {what}{said}",
                "It may not accept connections from the cluster's address: ask the provider or the mail server's "
                "administrator to allow (whitelist) the cluster's egress IP address",
                hints.connection,
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if stage is StageName.STARTTLS:
        return _verdict(
            Reason.TLS_MISMATCH,
            _with(f"The server refused STARTTLS{said}", _TLS_PORTS, hints.tls),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if stage is StageName.MAIL or (stage is StageName.DATA and _has(text, _SENDER_WORDS)):
        return _sender_rejected(result, failure, hints)
    if stage is StageName.RCPT:
        if "relay" in text:
            fix = (
                "The server does not relay for this client: set auth.method and credentials"
                if result.auth_method == "none"
                else "The server does not relay to this recipient for this login"
            )
        else:
            fix = "Check probe.recipient, or leave it empty to skip the RCPT TO check"
        return _verdict(
            Reason.RECIPIENT_REJECTED,
            _with(f"The server refused the recipient {result.rcpt_to or ''}{said}".replace("  ", " "), fix),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    if stage is StageName.DATA:
        return _verdict(
            Reason.MESSAGE_REJECTED,
            _with(f"The server refused the test message{said}", hints.sender),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    return None


def _auth_unavailable(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification:
    stage = result.stage(StageName.AUTH)
    facts = stage.detail if stage is not None else {}
    if not facts.get("offered") and not facts.get("encrypted") and facts.get("starttls_offered"):
        return _verdict(
            Reason.STARTTLS_REQUIRED,
            _with(
                f"The server offers AUTH only after STARTTLS, and tls is {result.tls_mode}",
                "Set tls: starttls (port 587) or tls: implicit (port 465)",
                hints.tls,
            ),
            transient=False,
            needs_person=True,
            stage=failure.stage,
        )
    return _mechanism_unsupported(result, failure, hints)


def _mechanism_unsupported(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification:
    stage = result.stage(StageName.AUTH)
    offered = list((stage.detail if stage is not None else {}).get("offered") or [])
    if not offered:
        ext = result.ehlo_after_tls or result.ehlo
        offered = ext.auth_mechanisms if ext is not None else []
    method = result.auth_method
    if offered:
        usable = [m.lower() for m in offered if m.lower() in ("plain", "login", "cram-md5", "xoauth2")]
        fix = f"Set auth.method to one it offers: {', '.join(usable) or ' '.join(offered)}"
        text = f"The server does not support AUTH {method.upper()}; it offers {' '.join(offered)}"
    else:
        fix = (
            "Use the provider's submission port (587 or 465), or set auth.method: none if this server relays by "
            "client address"
        )
        text = f"The server offers no SMTP AUTH on port {result.port}"
    return _verdict(
        Reason.AUTH_MECHANISM_UNSUPPORTED,
        _with(text + _said(failure.reply), fix, hints.auth),
        transient=False,
        needs_person=True,
        stage=failure.stage,
    )


def _authentication_failed(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification:
    reply = failure.reply
    text = reply.text.lower() if reply else ""
    enhanced = reply.enhanced if reply else None
    if enhanced == "5.7.9" or "application-specific password" in text:
        advice = (
            "The provider wants an app password here, not the account password: turn on 2-Step Verification and "
            "create an app password"
        )
    elif enhanced == "5.7.14" or "web browser" in text:
        advice = "The provider blocked this sign-in: sign in once in a browser to allow it, or use an app password"
    else:
        advice = (
            "Check the username and password in the credentials Secret. Many providers want an app password or an "
            "SMTP credential here rather than the account password"
        )
    return _verdict(
        Reason.AUTHENTICATION_FAILED,
        _with(f"The server refused the credentials for {result.username}{_said(reply)}", advice, hints.auth),
        transient=False,
        needs_person=True,
        stage=failure.stage,
    )


def _token_rejected(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification:
    said = _said(failure.reply)
    if result.token_source == _STATIC_TOKEN:
        advice = (
            "Access tokens expire (often after an hour): put a fresh token in the token Secret, or give an OAuth2 "
            "client-credentials block so the operator fetches and refreshes tokens itself"
        )
    else:
        advice = (
            "The token was dropped from the cache and the next probe asks for a new one. If a fresh token is refused "
            f"too, the application lacks rights on the mailbox {result.username}: for Microsoft 365 grant the "
            "SMTP.SendAsApp application permission (with admin consent), register the app's service principal in "
            "Exchange Online and give it access to the mailbox"
        )
    return _verdict(
        Reason.TOKEN_EXPIRED,
        _with(f"The server refused the OAuth2 access token for {result.username}{said}", advice, hints.oauth2),
        transient=False,
        needs_person=result.token_source == _STATIC_TOKEN,
        stage=failure.stage,
    )


def _sender_rejected(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification:
    reply = failure.reply
    text = reply.text.lower() if reply else ""
    if "relay" in text and result.auth_method == "none":
        advice = "The server does not relay for unauthenticated clients: set auth.method and credentials"
    elif _has(text, _SENDER_WORDS) or "relay" in text:
        advice = (
            "Use a sender address this login may send as, and verify the sender address or domain with the provider"
        )
    else:
        advice = "Use a sender address the provider accepts for this login"
    return _verdict(
        Reason.SENDER_REJECTED,
        _with(f"The server refused the sender {result.mail_from}{_said(reply)}", advice, hints.sender),
        transient=False,
        needs_person=True,
        stage=failure.stage,
    )


def _session(result: ProbeResult, failure: Failure, hints: ProbeHints) -> Classification:
    host, port, stage, kind = result.host, result.port, failure.stage, failure.kind
    where = stage.value.upper() if stage not in (StageName.BANNER, StageName.TLS) else f"the {stage.value}"
    if kind is FailureKind.TIMEOUT:
        if stage is StageName.BANNER:
            text = (
                f"{host} port {port} accepted the connection but sent no greeting ({failure.detail}); "
                "it does not answer TLS first either"
                if result.implicit_tls_detected is False
                else f"{host} port {port} accepted the connection but sent no greeting ({failure.detail})"
            )
            advice = "The server may be overloaded or slow down unknown clients; the probe retries"
        else:
            text = f"The server stopped answering during {where} ({failure.detail})"
            advice = "The probe retries"
        return _verdict(
            Reason.CONNECTION_TIMED_OUT,
            _with(text, advice, hints.connection),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if kind is FailureKind.DISCONNECTED:
        if stage is StageName.BANNER:
            advice = (
                "It may refuse connections from the cluster's address (an IP allow list, or a block for poor "
                "reputation); ask the provider to allow the cluster's egress IP address"
            )
        elif stage is StageName.TLS:
            advice = "It may not accept this client's TLS versions or ciphers, or it dropped the session"
        else:
            advice = "It may be limiting this client or restarting; the probe retries"
        return _verdict(
            Reason.SERVER_DISCONNECTED,
            _with(f"{host} port {port} closed the connection during {where}", advice, hints.connection),
            transient=True,
            needs_person=False,
            stage=stage,
        )
    if kind is FailureKind.PROTOCOL:
        return _verdict(
            Reason.PROTOCOL_ERROR,
            _with(
                f"{host} port {port} does not speak SMTP as expected at {where} ({failure.detail})",
                "Check that host and port point at the provider's SMTP service",
            ),
            transient=False,
            needs_person=True,
            stage=stage,
        )
    reply = failure.reply
    transient = reply.transient if reply is not None else True
    return _verdict(
        Reason.SERVER_TEMPORARY_FAILURE if transient else Reason.PROTOCOL_ERROR,
        _with(f"The probe failed at {where}: {failure.detail}{_said(reply)}"),
        transient=transient,
        needs_person=not transient,
        stage=stage,
    )
