"""TLS for the probe: client contexts that time the handshake and keep the peer's certificates even when
verification fails, and the facts read from those certificates (subject, SANs, issuer, expiry, hostname match)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from postmaster.checks.smtp.result import CertificateFacts, FailureKind

# OpenSSL X509_V_ERR_* codes, by what they mean for a person.
_UNTRUSTED = frozenset({2, 7, 18, 19, 20, 21, 23, 24, 26, 27, 28})
_NOT_YET_VALID = 9
_EXPIRED = 10
_NAME_MISMATCH = frozenset({62, 64})

# OpenSSL reasons that mean the other side does not speak TLS at all (it sent plain SMTP text).
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)


@dataclass
class HandshakeRecorder:
    """Filled in by the context's SSLObject class while a handshake runs: when it started and finished, the peer's
    certificate chain as DER (also when verification failed), and the OpenSSL verification error."""

    started: float | None = None
    finished: float | None = None
    chain_der: list[bytes] = field(default_factory=list)
    verify_code: int | None = None
    verify_message: str | None = None
    ssl_object: ssl.SSLObject | None = None


def _unverified_chain(obj: ssl.SSLObject) -> list[bytes]:
    """The certificates the peer sent, leaf first, whether they verified or not.

    ``SSLObject.get_unverified_chain`` is public from Python 3.13; 3.10 to 3.12 have it on the inner ``_ssl`` object.
    """
    getter = getattr(obj, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(obj, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        return []
    try:
        chain = getter() or []
    except (ssl.SSLError, ValueError, AttributeError):
        return []
    der: list[bytes] = []
    for cert in chain:
        if isinstance(cert, bytes):
            der.append(cert)
        else:
            pem = cert.public_bytes()
            der.append(ssl.PEM_cert_to_DER_cert(pem if isinstance(pem, str) else pem.decode("ascii")))
    return der


def recording_context(verify: bool, ca_bundle_pem: str | None, recorder: HandshakeRecorder) -> ssl.SSLContext:
    """A client context for one connection that reports into ``recorder``.

    With ``verify``, the chain must lead to the system trust store, or to ``ca_bundle_pem`` only when it is given, and
    the certificate must name the host. Loading the system store takes tens of milliseconds: call this in a thread.
    """
    if verify:
        context = ssl.create_default_context(cadata=ca_bundle_pem) if ca_bundle_pem else ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    class _RecordingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            if recorder.started is None:
                recorder.started = time.perf_counter()
            try:
                super().do_handshake()
            except ssl.SSLCertVerificationError as exc:
                recorder.verify_code = exc.verify_code
                recorder.verify_message = exc.verify_message
                recorder.chain_der = _unverified_chain(self)
                raise
            recorder.finished = time.perf_counter()
            recorder.ssl_object = self
            recorder.chain_der = _unverified_chain(self)
            if not recorder.chain_der:
                leaf = self.getpeercert(binary_form=True)
                recorder.chain_der = [leaf] if leaf else []

    context.sslobject_class = _RecordingSSLObject
    return context


def sniff_context() -> ssl.SSLContext:
    """An unverifying context: only asks whether a port answers a TLS ClientHello."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_failure_kind(exc: BaseException) -> FailureKind:
    """Sort a handshake exception: the certificate, the peer not speaking TLS, or any other handshake problem."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FailureKind.TLS_CERTIFICATE
    if isinstance(exc, ssl.SSLError):
        reason = (getattr(exc, "reason", None) or "").upper()
        if reason in _NOT_TLS_REASONS or "WRONG VERSION NUMBER" in str(exc).upper():
            return FailureKind.NOT_TLS
    return FailureKind.TLS_HANDSHAKE


def describe_tls_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None)
        library = getattr(exc, "library", None)
        if reason:
            return f"TLS handshake failed: {reason.lower().replace('_', ' ')}" + (f" ({library})" if library else "")
    return f"TLS handshake failed: {type(exc).__name__}: {exc}".rstrip(": ")


def verify_error_meaning(code: int | None) -> tuple[bool | None, bool | None]:
    """(hostname_matched, chain_verified) as far as an OpenSSL verification error code tells them.

    OpenSSL builds the chain to a trusted root, then checks the name, then signatures and validity dates, and reports
    the first failure; so a name mismatch says nothing yet about dates, an expiry implies the name matched.
    """
    if code is None:
        return None, None
    if code in _NAME_MISMATCH:
        return False, None
    if code in (_EXPIRED, _NOT_YET_VALID):
        return True, False
    if code in _UNTRUSTED:
        return None, False
    return None, False


def untrusted(code: int | None) -> bool:
    return code in _UNTRUSTED


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()


def certificate_facts(der: bytes, now: datetime.datetime | None = None) -> CertificateFacts:
    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.datetime.now(datetime.UTC)
    cn_attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(cn_attrs[0].value) if cn_attrs else None
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        sans.extend(f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName))
        sans.extend(f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress))
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    left = not_after - now
    return CertificateFacts(
        subject=_name(cert.subject),
        common_name=common_name,
        sans=sans,
        issuer=_name(cert.issuer),
        not_before=not_before,
        not_after=not_after,
        days_left=left.days,
        expired=now > not_after,
        not_yet_valid=now < not_before,
        self_signed=cert.issuer == cert.subject,
        serial=format(cert.serial_number, "x"),
        sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def hostname_matches(host: str, sans: list[str]) -> bool:
    """RFC 6125 matching of ``host`` against ``DNS:``/``IP:`` SAN entries: exact, or one ``*`` as the whole leftmost
    label. The subject CN is not consulted (as in browsers and Python's ``ssl``)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return any(san.startswith("IP:") and ipaddress.ip_address(san[3:]) == address for san in sans)
    try:
        wanted = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        wanted = host.rstrip(".").lower()
    first, _, rest = wanted.partition(".")
    for san in sans:
        if not san.startswith("DNS:"):
            continue
        pattern = san[4:].rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and rest and first and pattern[2:] == rest:
            return True
    return False
