"""What `check_host()` returns (RFC 7208 section 2.6): the result code, and why an error is an error.

`SpfResult` is the whole outcome of one evaluation; `SpfProblem` says what made it ``permerror`` or
``temperror``. `QUALIFIER_RESULT` maps a directive's qualifier to the result it gives when it matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class SpfResultCode(StrEnum):
    """Section 2.6."""

    PASS = "pass"  # noqa: S105 - a result name, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


QUALIFIER_RESULT: Mapping[str, SpfResultCode] = MappingProxyType(
    {
        "+": SpfResultCode.PASS,
        "-": SpfResultCode.FAIL,
        "~": SpfResultCode.SOFTFAIL,
        "?": SpfResultCode.NEUTRAL,
    }
)
"""Section 4.6.2: the result a matching directive gives, by its qualifier."""


class ProblemKind(StrEnum):
    SYNTAX = "syntax"
    NO_RECORD = "no-record"
    MULTIPLE_RECORDS = "multiple-records"
    TOO_MANY_LOOKUPS = "too-many-lookups"
    TOO_MANY_VOID_LOOKUPS = "too-many-void-lookups"
    TOO_MANY_MX = "too-many-mx"
    INVALID_TARGET = "invalid-target"
    DNS_TIMEOUT = "DNSTimeout"
    DNS_SERVER_FAILURE = "DNSServerFailure"
    EVALUATION_TIMEOUT = "evaluation-timeout"


@dataclass(frozen=True, slots=True)
class SpfProblem:
    """Why a result is permerror or temperror: what went wrong, in which domain's record, at which term."""

    kind: ProblemKind
    domain: str
    term: str | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.domain}: {self.term}: " if self.term else f"{self.domain}: "
        return where + self.detail


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of `check_host()`."""

    result: SpfResultCode
    domain: str
    explanation: str | None = None
    """For ``fail`` only: the domain's `exp=` text, expanded, or a default one (section 6.2)."""
    mechanism: str | None = None
    """The term of `domain`'s record (or of the record a redirect led to) that decided the result."""
    matched_domain: str | None = None
    """The domain whose record holds `mechanism`."""
    record: str | None = None
    """The SPF record of `domain`, as published (strings joined)."""
    dns_lookups: int = 0
    void_lookups: int = 0
    trace: tuple[str, ...] = ()
    problem: SpfProblem | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "result": self.result.value,
            "domain": self.domain,
            "explanation": self.explanation,
            "mechanism": self.mechanism,
            "matched_domain": self.matched_domain,
            "record": self.record,
            "dns_lookups": self.dns_lookups,
            "void_lookups": self.void_lookups,
            "problem": str(self.problem) if self.problem else None,
            "trace": list(self.trace),
        }
