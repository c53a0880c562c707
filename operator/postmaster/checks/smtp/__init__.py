"""SMTP probing: a staged session against a mail provider, and the condition it amounts to.

    result = await probe(ProbeConfig(host="smtp.example.com", ...), limiter=semaphore)
    verdict = classify(result, hints)          # reason, message, status, transient, needs_person

No Kubernetes in here: the handlers turn a MailProvider into a :class:`ProbeConfig` and a verdict into conditions.
"""

from postmaster.checks.secret import Secret
from postmaster.checks.smtp.classify import Classification, ProbeHints, Reason, classify
from postmaster.checks.smtp.config import AuthMethod, ProbeConfig, Timeouts, TlsMode
from postmaster.checks.smtp.result import (
    CertificateFacts,
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
from postmaster.checks.smtp.session import (
    ResolutionError,
    Resolver,
    dns_resolver,
    lookup_resolver,
    probe,
    send_test_email,
    system_resolver,
)

__all__ = [
    "AuthMethod",
    "CertificateFacts",
    "Classification",
    "Extensions",
    "Failure",
    "FailureKind",
    "ProbeConfig",
    "ProbeHints",
    "ProbeResult",
    "Reason",
    "Reply",
    "ResolutionError",
    "Resolver",
    "Secret",
    "SendResult",
    "Stage",
    "StageName",
    "Timeouts",
    "TlsFacts",
    "TlsMode",
    "classify",
    "dns_resolver",
    "lookup_resolver",
    "probe",
    "send_test_email",
    "system_resolver",
]
