"""DMARC: the record that applies to a sending domain, how it was found, and whether it is ready.

Discovery follows RFC 9989 (DMARCbis), which replaced RFC 7489's public suffix list with the *DNS tree
walk* (section 4.10): ask ``_dmarc.<domain>``; then, while no record with a ``psd=`` tag of ``y`` or ``n``
has stopped the walk, ask the parent names: a domain of eight or more labels jumps straight to its last
seven labels, then one label goes at a time, down to the top-level domain (so at most eight queries).
`walk_targets(domain)` lists those names; `tree_walk(domain, resolver)` asks them and returns a
`TreeWalk` with every answer, the *organizational domain* (section 4.10.2: the first ``psd=n`` record
from the longest name; else one label below a ``psd=y`` record; else the record with the fewest labels;
else the domain itself) and the record policy discovery applies (section 4.10.1: the domain's own record,
else the organizational domain's, else the public suffix domain's).

The public suffix list answer (``publicsuffixlist``, shipped offline) is what RFC 7489 receivers, still
the majority, compute; the verdict reports it when it differs.

Records are parsed per RFC 9989 section 4.7 (tags ``v p sp np adkim aspf rua ruf fo psd t``); the
RFC 7489 tags ``pct rf ri`` are obsolete and draw compatibility warnings. `parse_record` never raises for
a record that starts with ``v=DMARC1``: receivers ignore bad tags in favour of defaults, so each bad tag
becomes a named `DmarcProblem` on the record.

`dmarc_readiness(domain, minimum_policy=..., report_addresses=..., resolver=...)` gives the
``DMARCReady`` verdict. Reasons (`DmarcReason`), first match wins, every problem is in the message:

* ``Ready`` (True);
* ``MultipleRecords``: several DMARC records at ``_dmarc.<domain>``; receivers discard them all;
* ``SyntaxError``: a record that is almost DMARC (``v=dmarc1``, ``v=`` not first, no ``;``), or a tag
  receivers will ignore: a bad value, a repeated tag, a missing ``p=`` (required by RFC 7489, which most
  receivers follow; RFC 9989 would read ``p=none``);
* ``RecordMissing``: no record at the domain, its organizational domain or its public suffix domain;
* ``PolicyTooWeak``: the policy that applies is below `minimum_policy`. For a domain covered by its
  organizational domain's record, that is ``sp=`` (``np=`` when the domain does not exist), else ``p=``;
  ``t=y`` (testing) lowers it one level, as RFC 9989 asks receivers to;
* ``ReportAddressMissing``: a wanted report address is not in ``rua=``;
* ``ReportDestinationNotAuthorized``: an ``rua``/``ruf`` address outside the organizational domain whose
  domain does not publish ``<policy domain>._report._dmarc.<destination>`` TXT ``v=DMARC1`` (RFC 7489
  section 7.1); receivers then send it nothing. Outside means: a different organizational domain by the
  tree walk *or* by the public suffix list (a record some receivers need is needed);
* ``DNSTimeout`` / ``DNSServerFailure`` (Unknown).

The verdict proposes the record to publish (`suggested_record`, at `suggested_name`) and names the
alignment modes (``adkim``/``aspf``) in its message.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Literal

from publicsuffixlist import PublicSuffixList

from postmaster.checks.dns import (
    DnsLookup,
    DnsTransientError,
    InvalidDomainNameError,
    Status,
    TxtRecord,
    normalize_name,
)
from postmaster.checks.spf import format_txt_strings
from postmaster.checks.verdict import ConditionStatus, status_for

__all__ = [
    "MAX_WALK_LABELS",
    "DmarcPolicy",
    "DmarcProblem",
    "DmarcReason",
    "DmarcRecord",
    "DmarcVerdict",
    "ReportAuthorization",
    "TreeWalk",
    "WalkStep",
    "dmarc_readiness",
    "is_dmarc_record",
    "parse_record",
    "propose_record",
    "psl_organizational_domain",
    "report_authorization_name",
    "tree_walk",
    "walk_targets",
]

MAX_WALK_LABELS = 8
"""RFC 9989 section 4.10: a domain of this many labels or more jumps to its last seven."""


class DmarcPolicy(StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def lowered(self) -> DmarcPolicy:
        """One level down, as ``t=y`` asks (RFC 9989 section 4.7)."""
        return {DmarcPolicy.REJECT: DmarcPolicy.QUARANTINE}.get(self, DmarcPolicy.NONE)


_RANK = {DmarcPolicy.NONE: 0, DmarcPolicy.QUARANTINE: 1, DmarcPolicy.REJECT: 2}


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------

_VERSION = re.compile(r"[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|\Z)")
_TAG_NAME = re.compile(r"[A-Za-z]+")
_VALUE = re.compile(r"[\x20-\x3a\x3c-\x7e]+")
_KNOWN = ("v", "p", "sp", "np", "adkim", "aspf", "rua", "ruf", "fo", "psd", "t")
_OBSOLETE = ("pct", "rf", "ri")


def is_dmarc_record(text: str) -> bool:
    """RFC 9989 section 4.7: the record starts with the ``v`` tag, value ``DMARC1`` exactly."""
    return _VERSION.match(text) is not None


@dataclass(frozen=True, slots=True)
class DmarcProblem:
    """A tag receivers ignore (and what to write instead); `tag` is None for the record as a whole."""

    tag: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.tag}=: {self.detail}" if self.tag else self.detail


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """A parsed DMARC policy record: valid tags with defaults applied, plus what is wrong with it."""

    text: str
    tags: tuple[tuple[str, str], ...]
    """Every ``name=value`` as written (names lower-cased), valid or not."""
    p: DmarcPolicy | None = None
    sp: DmarcPolicy | None = None
    np: DmarcPolicy | None = None
    adkim: Literal["r", "s"] = "r"
    aspf: Literal["r", "s"] = "r"
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str | None = None
    psd: Literal["y", "n", "u"] = "u"
    t: Literal["y", "n"] = "n"
    pct: int | None = None
    problems: tuple[DmarcProblem, ...] = ()
    """Syntax errors: receivers drop these tags (or, for ``p``, may drop the record)."""
    warnings: tuple[str, ...] = ()
    """Obsolete and unknown tags, ignored ``fo``, ``pct`` below 100: compatibility notes."""

    def value(self, tag: str) -> str | None:
        return next((v for n, v in self.tags if n == tag), None)

    @property
    def testing(self) -> bool:
        return self.t == "y"


def parse_record(text: str) -> DmarcRecord:
    """Parse a record that `is_dmarc_record`; every bad tag becomes a `DmarcProblem`, none raises."""
    if not is_dmarc_record(text):
        raise ValueError("not a DMARC record: it must start with v=DMARC1")
    builder = _RecordBuilder(text)
    return builder.build()


@dataclass
class _RecordBuilder:
    text: str
    problems: list[DmarcProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)
    """Tags whose value broke the syntax: reported once, then ignored."""

    def problem(self, tag: str | None, detail: str) -> None:
        self.problems.append(DmarcProblem(tag, detail))

    def split(self) -> list[tuple[str, str]]:
        """The record's ``name=value`` pairs; malformed and repeated ones become problems."""
        tags: list[tuple[str, str]] = []
        seen: set[str] = set()
        for index, raw in enumerate(self.text.split(";")):
            segment = raw.strip(" \t")
            if not segment:
                continue
            name, equals, value = segment.partition("=")
            name, value = name.strip(" \t").lower(), value.strip(" \t")
            if not equals or not _TAG_NAME.fullmatch(name):
                self.problem(None, f"'{segment}' is not a tag=value pair; receivers ignore it (separate tags with ';')")
                continue
            if index > 0 and name in seen:
                self.problem(name, f"appears more than once; keep exactly one {name}= tag")
                continue
            seen.add(name)
            tags.append((name, value))
            if index > 0 and not _VALUE.fullmatch(value):
                self.problem(name, "has an empty value or characters a DMARC value may not hold")
                self.unreadable.add(name)
        return tags

    def choice(self, values: dict[str, str], name: str, allowed: str, meaning: str) -> str | None:
        if name not in values:
            return None
        value = values[name].lower()
        if len(value) == 1 and value in allowed:
            return value
        self.problem(name, f"'{values[name]}' is not {meaning}")
        return None

    def build(self) -> DmarcRecord:
        tags = self.split()
        values = {name: value for name, value in tags if name not in self.unreadable}
        fields: dict[str, object] = {}
        for name in ("p", "sp", "np"):
            if name in values:
                policy = self.policy(name, values[name])
                if policy is not None:
                    fields[name] = policy
        if "p" not in dict(tags):
            self.problem(
                "p",
                "is missing: RFC 7489 receivers (most of them) discard a record without p=; RFC 9989 reads it as "
                "p=none. Add p=none, p=quarantine or p=reject",
            )
        for name in ("adkim", "aspf"):
            fields[name] = self.choice(values, name, "rs", "r (relaxed) or s (strict); receivers use r")
        fields["psd"] = self.choice(values, "psd", "ynu", "y, n or u; receivers use u")
        fields["t"] = self.choice(values, "t", "yn", "y or n; receivers use n")
        for name in ("rua", "ruf"):
            if name in values:
                fields[name] = self.uris(name, values[name])
        if "fo" in values:
            fields["fo"] = self.failure_options(values["fo"], has_ruf="ruf" in values)
        fields["pct"] = self.obsolete(values)
        self.warnings += [
            f"unknown tag {name}= is ignored by receivers" for name, _ in tags if name not in (*_KNOWN, *_OBSOLETE)
        ]
        return DmarcRecord(
            text=self.text,
            tags=tuple(tags),
            problems=tuple(self.problems),
            warnings=tuple(self.warnings),
            **{k: v for k, v in fields.items() if v is not None},  # type: ignore[arg-type]
        )

    def policy(self, name: str, value: str) -> DmarcPolicy | None:
        try:
            return DmarcPolicy(value.lower())
        except ValueError:
            fallback = "receivers treat the record as p=none if it has a valid rua=, else ignore it"
            if name != "p":
                fallback = "receivers ignore it"
            self.problem(name, f"'{value}' is not none, quarantine or reject; {fallback}")
            return None

    def uris(self, name: str, value: str) -> tuple[str, ...]:
        valid: list[str] = []
        for raw in value.split(","):
            uri = raw.strip(" \t")
            if not uri:
                self.problem(name, "has an empty entry in its comma-separated list")
                continue
            base, bang, size = uri.partition("!")
            if bang:
                if not re.fullmatch(r"[0-9]+[kmgt]?", size, re.IGNORECASE):
                    self.problem(name, f"'{uri}': an unencoded '!' must be written %21")
                    continue
                self.warnings.append(f"{name}= size limit '!{size}' is obsolete (RFC 9989); receivers ignore it")
            scheme, colon, rest = base.partition(":")
            if not colon or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) or not rest:
                self.problem(name, f"'{uri}' is not a URI; write mailto:reports@example.com")
                continue
            if scheme.lower() != "mailto":
                self.warnings.append(f"{name}= '{uri}': receivers are only required to support mailto: URIs")
                valid.append(base)
                continue
            if mailto_domain(base) is None:
                self.problem(name, f"'{uri}' is not a mailto: URI with a valid address")
                continue
            valid.append(base)
        return tuple(valid)

    def failure_options(self, value: str, *, has_ruf: bool) -> str | None:
        options = [o.strip().lower() for o in value.split(":")]
        if not options or any(o not in ("0", "1", "d", "s") for o in options) or len(set(options)) != len(options):
            self.problem("fo", f"'{value}' is not a colon-separated list of 0, 1, d and s; receivers use 0")
            return None
        if "0" in options and "1" in options:
            self.problem("fo", "0 and 1 exclude each other; keep one")
            return None
        if not has_ruf:
            self.warnings.append("fo= has no effect without ruf=")
        return ":".join(options)

    def obsolete(self, values: dict[str, str]) -> int | None:
        pct: int | None = None
        if "pct" in values:
            raw = values["pct"]
            if raw.isdigit() and 0 <= int(raw) <= 100:
                pct = int(raw)
                if pct < 100:
                    self.warnings.append(
                        f"pct={pct}: RFC 7489 receivers apply the policy to only {pct}% of failing mail (and the "
                        "next weaker policy to the rest); RFC 9989 dropped pct (use t=y to test). Remove pct= when "
                        "you mean the whole policy"
                    )
                else:
                    self.warnings.append("pct=100 is obsolete in RFC 9989 and can be removed")
            else:
                self.problem("pct", f"'{raw}' is not a number from 0 to 100 (and pct= is obsolete: remove it)")
        if "rf" in values:
            self.warnings.append("rf= is obsolete in RFC 9989 (the only format was afrf); remove it")
        if "ri" in values:
            if not values["ri"].isdigit():
                self.problem("ri", f"'{values['ri']}' is not a number of seconds (and ri= is obsolete: remove it)")
            else:
                self.warnings.append("ri= is obsolete in RFC 9989 (aggregate reports are daily); remove it")
        return pct


def near_miss_reason(text: str) -> str:
    """Why a TXT record that mentions DMARC1 is not a DMARC record to receivers."""
    if text != text.lstrip():
        return "it starts with whitespace; the record must start with v=DMARC1"
    if re.match(r"v[ \t]*=[ \t]*dmarc1", text, re.IGNORECASE) and not re.match(r"[vV][ \t]*=[ \t]*DMARC1", text):
        return "the version is case-sensitive: write v=DMARC1"
    if re.match(r"[vV][ \t]*=[ \t]*DMARC1", text):
        return "v=DMARC1 must be followed by ';' before the next tag"
    if re.search(r"v[ \t]*=[ \t]*dmarc1", text, re.IGNORECASE):
        return "v=DMARC1 must be the first tag"
    return "the record must start with v=DMARC1"


def mailto_domain(uri: str) -> str | None:
    """The domain of a ``mailto:`` URI's address, normalised; None when there is no valid address."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "mailto":
        return None
    address = urllib.parse.unquote(rest.partition("?")[0])
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        return normalize_name(domain)
    except InvalidDomainNameError:
        return None


def _mailto(address: str) -> str:
    text = address.strip()
    return text if text.lower().startswith("mailto:") else f"mailto:{text}"


def _address_key(uri: str) -> str:
    return urllib.parse.unquote(uri.partition("!")[0]).lower()


# --------------------------------------------------------------------------------------------------
# The DNS tree walk (RFC 9989 section 4.10)
# --------------------------------------------------------------------------------------------------


def walk_targets(domain: str) -> list[str]:
    """The names a full tree walk from `domain` asks ``_dmarc.`` of, in order (section 4.10, steps 3-7)."""
    labels = normalize_name(domain).split(".")
    targets = [".".join(labels)]
    keep = len(labels) - 1 if len(labels) < MAX_WALK_LABELS else MAX_WALK_LABELS - 1
    while keep >= 1:
        targets.append(".".join(labels[-keep:]))
        keep -= 1
    return targets


WalkOutcome = Literal["record", "none", "multiple"]


@dataclass(frozen=True, slots=True)
class WalkStep:
    """What ``_dmarc.<domain>`` held."""

    domain: str
    outcome: WalkOutcome
    record: DmarcRecord | None = None
    texts: tuple[str, ...] = ()
    """Every TXT record at the name, strings joined (DMARC or not)."""
    nxdomain: bool = False

    @property
    def name(self) -> str:
        return f"_dmarc.{self.domain}"

    @property
    def dmarc_texts(self) -> tuple[str, ...]:
        return tuple(t for t in self.texts if is_dmarc_record(t))


@dataclass(frozen=True, slots=True)
class TreeWalk:
    start: str
    steps: tuple[WalkStep, ...]
    organizational_domain: str
    policy_step: WalkStep | None
    """The record that applies to `start` (policy discovery, section 4.10.1); None when none does."""

    @property
    def own(self) -> WalkStep:
        return self.steps[0]

    @property
    def inherited(self) -> bool:
        """The applicable record was found above `start`, so ``sp``/``np`` decide the policy."""
        return self.policy_step is not None and self.policy_step.domain != self.start

    @property
    def psd_step(self) -> WalkStep | None:
        return next((s for s in self.steps if s.record is not None and s.record.psd == "y"), None)


def _joined(record: TxtRecord) -> str:
    return b"".join(record).decode("utf-8", errors="replace")


async def _ask(domain: str, lookup: DnsLookup) -> WalkStep:
    answer = await lookup.txt(f"_dmarc.{domain}")
    texts = tuple(_joined(r) for r in answer.records)
    dmarc = [t for t in texts if is_dmarc_record(t)]
    nx = answer.status is Status.NXDOMAIN
    if len(dmarc) == 1:
        return WalkStep(domain, "record", parse_record(dmarc[0]), texts, nx)
    return WalkStep(domain, "multiple" if dmarc else "none", None, texts, nx)


async def tree_walk(domain: str, resolver: DnsLookup) -> TreeWalk:
    """Walk from `domain` up (section 4.10); raises `DnsTransientError` when an answer does not come."""
    start = normalize_name(domain)
    steps: list[WalkStep] = []
    for target in walk_targets(start):
        step = await _ask(target, resolver)
        steps.append(step)
        if step.record is not None and step.record.psd in ("y", "n"):
            break
    return _conclude(start, tuple(steps))


def _conclude(start: str, steps: tuple[WalkStep, ...]) -> TreeWalk:
    found = [s for s in steps if s.record is not None]  # longest first: the walk's own order
    organizational = None
    for step in found:
        psd = step.record.psd if step.record is not None else "u"
        if psd == "n":
            organizational = step.domain
            break
        if psd == "y" and step.domain != start:
            organizational = ".".join(start.split(".")[-(step.domain.count(".") + 2) :])
            break
    if organizational is None:
        organizational = found[-1].domain if found else start
    own = steps[0]
    policy: WalkStep | None = None
    if own.record is not None:
        policy = own
    else:
        policy = next((s for s in found if s.domain == organizational), None)
        if policy is None:
            policy = next((s for s in found if s.record is not None and s.record.psd == "y"), None)
    return TreeWalk(start, steps, organizational, policy)


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def psl_organizational_domain(domain: str) -> str:
    """RFC 7489's organizational domain: one label below the longest public suffix (the domain itself
    when it is a public suffix)."""
    name = normalize_name(domain)
    return _psl().privatesuffix(name) or name


def report_authorization_name(policy_domain: str, destination: str) -> str:
    """Where `destination` agrees to receive reports for `policy_domain` (RFC 7489 section 7.1)."""
    return f"{policy_domain}._report._dmarc.{destination}"


# --------------------------------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------------------------------


class DmarcReason(StrEnum):
    """Reasons of the `DMARCReady` condition. Stable: they are API."""

    READY = "Ready"
    RECORD_MISSING = "RecordMissing"
    MULTIPLE_RECORDS = "MultipleRecords"
    SYNTAX_ERROR = "SyntaxError"
    POLICY_TOO_WEAK = "PolicyTooWeak"
    REPORT_ADDRESS_MISSING = "ReportAddressMissing"
    REPORT_DESTINATION_NOT_AUTHORIZED = "ReportDestinationNotAuthorized"
    DNS_TIMEOUT = "DNSTimeout"
    DNS_SERVER_FAILURE = "DNSServerFailure"


@dataclass(frozen=True, slots=True)
class ReportAuthorization:
    """Whether an external report destination agreed to receive the domain's reports."""

    uri: str
    destination: str
    """The domain of the address."""
    policy_domain: str
    external: bool
    name: str | None = None
    """``<policy domain>._report._dmarc.<destination>`` when `external`."""
    authorized: bool | None = None
    """True/False once asked; None when internal, or when DNS did not answer."""
    why_external: str = ""
    published_in_record: bool = True
    """False for a wanted address the record does not list yet."""

    def as_dict(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "destination": self.destination,
            "external": self.external,
            "name": self.name,
            "authorized": self.authorized,
        }


@dataclass(frozen=True, slots=True)
class DmarcVerdict:
    """Whether the DMARC policy that applies to a sending domain is ready (the ``DMARCReady`` condition)."""

    domain: str
    reason: DmarcReason
    status: ConditionStatus
    message: str
    record: str | None = None
    """The applicable record's text."""
    record_name: str | None = None
    """Where it was found: ``_dmarc.<domain>`` or a parent's."""
    policy_domain: str | None = None
    organizational_domain: str | None = None
    """By RFC 9989's tree walk."""
    psl_organizational_domain: str | None = None
    """By the public suffix list (RFC 7489)."""
    effective_policy: DmarcPolicy | None = None
    adkim: str | None = None
    aspf: str | None = None
    suggested_name: str = ""
    suggested_record: str | None = None
    """The record to publish at `suggested_name`; None when the record found needs no change (it may still
    not be ready because of something elsewhere: a destination's consent, a DNS failure)."""
    report_authorizations: tuple[ReportAuthorization, ...] = ()
    warnings: tuple[str, ...] = ()
    walked: tuple[str, ...] = ()
    """The ``_dmarc`` names asked, in order."""

    @property
    def ready(self) -> bool:
        return self.reason is DmarcReason.READY

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason.value,
            "status": self.status,
            "message": self.message,
            "record": self.record,
            "recordName": self.record_name,
            "policyDomain": self.policy_domain,
            "organizationalDomain": self.organizational_domain,
            "pslOrganizationalDomain": self.psl_organizational_domain,
            "effectivePolicy": self.effective_policy.value if self.effective_policy else None,
            "adkim": self.adkim,
            "aspf": self.aspf,
            "suggestedName": self.suggested_name,
            "suggestedRecord": self.suggested_record,
            "reportAuthorizations": [a.as_dict() for a in self.report_authorizations],
            "warnings": list(self.warnings),
            "walked": list(self.walked),
        }


def effective_policy(record: DmarcRecord, *, inherited: bool, exists: bool = True) -> DmarcPolicy | None:
    """The policy receivers apply (section 4.10.1); None when the record carries no usable one."""
    policy = record.p
    if inherited:
        policy = (record.np if not exists else None) or record.sp or record.p
    if policy is None and record.p is None and record.rua:
        policy = DmarcPolicy.NONE  # no valid p= but a valid rua=: receivers act as if p=none
    if policy is not None and record.testing:
        policy = policy.lowered()
    return policy


def propose_record(
    domain: str,
    *,
    minimum_policy: DmarcPolicy | str,
    report_addresses: Sequence[str] = (),
    current: DmarcRecord | None = None,
    inherited: bool = False,
) -> str:
    """The record to publish at ``_dmarc.<domain>``: the current one's valid tags kept, the policy raised to
    at least `minimum_policy`, the wanted report addresses added, obsolete tags and ``t=y`` dropped."""
    minimum = DmarcPolicy(minimum_policy)
    policy = minimum
    if current is not None:
        now = effective_policy(current, inherited=inherited) if inherited else current.p
        if now is not None and not current.testing and now.rank > minimum.rank:
            policy = now
    tags = ["v=DMARC1", f"p={policy.value}"]
    rua = list(current.rua) if current is not None else []
    known = {_address_key(u) for u in rua}
    rua += [_mailto(a) for a in report_addresses if _address_key(_mailto(a)) not in known]
    if current is not None and not inherited:
        for name in ("sp", "np"):
            value = getattr(current, name)
            if value is not None:
                tags.append(f"{name}={value.value}")
    if current is not None:
        for name in ("adkim", "aspf"):
            if getattr(current, name) == "s":
                tags.append(f"{name}=s")
    if rua:
        tags.append("rua=" + ",".join(rua))
    if current is not None and not inherited:
        if current.ruf:
            tags.append("ruf=" + ",".join(current.ruf))
            if current.fo:
                tags.append(f"fo={current.fo}")
        if current.psd == "n":
            tags.append("psd=n")
    return "; ".join(tags)


async def dmarc_readiness(
    domain: str,
    *,
    minimum_policy: DmarcPolicy | str = DmarcPolicy.NONE,
    report_addresses: Sequence[str] = (),
    resolver: DnsLookup,
) -> DmarcVerdict:
    """Is the DMARC policy that receivers apply to `domain` at least `minimum_policy`, reporting to
    `report_addresses` (``mailto:`` URIs or bare addresses), with every external destination authorised?

    Any DNS answer that does not come (the walk, the existence check for ``np=``, a destination's
    authorisation) makes the verdict ``Unknown``.
    """
    name = normalize_name(domain)
    minimum = DmarcPolicy(minimum_policy)
    try:
        walk = await tree_walk(name, resolver)
        readiness = _Readiness(
            domain=name,
            minimum=minimum,
            wanted=[_mailto(a) for a in report_addresses],
            lookup=resolver,
            walk=walk,
            psl_org=psl_organizational_domain(name),
        )
        return await readiness.run()
    except DnsTransientError as exc:
        reason = DmarcReason.DNS_TIMEOUT if exc.reason == "DNSTimeout" else DmarcReason.DNS_SERVER_FAILURE
        return DmarcVerdict(
            domain=name,
            reason=reason,
            status="Unknown",
            message=f"Could not read the DMARC record of {name} this time ({exc}); will retry.",
            suggested_name=f"_dmarc.{name}",
        )


@dataclass
class _Findings:
    problems: list[tuple[DmarcReason, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    applicable: WalkStep | None = None
    record: DmarcRecord | None = None
    policy: DmarcPolicy | None = None
    authorizations: list[ReportAuthorization] = field(default_factory=list)

    def add(self, reason: DmarcReason, message: str) -> None:
        self.problems.append((reason, message))


@dataclass
class _Readiness:
    domain: str
    minimum: DmarcPolicy
    wanted: list[str]
    lookup: DnsLookup
    walk: TreeWalk
    psl_org: str

    @property
    def own_name(self) -> str:
        return f"_dmarc.{self.domain}"

    async def run(self) -> DmarcVerdict:
        walk = self.walk
        found = _Findings(applicable=walk.policy_step)
        found.record = found.applicable.record if found.applicable is not None else None
        self.own_record_problems(found)
        if found.applicable is None or found.record is None:
            if not found.problems:
                asked = ", ".join(s.name for s in walk.steps)
                found.add(DmarcReason.RECORD_MISSING, f"No DMARC record applies to {self.domain}: none at {asked}.")
        else:
            await self.record_problems(found, found.applicable, found.record)
        found.authorizations = await self.authorizations(found.applicable, found.record)
        for auth in found.authorizations:
            if auth.external and auth.authorized is False and auth.published_in_record:
                found.add(DmarcReason.REPORT_DESTINATION_NOT_AUTHORIZED, self.unauthorized_message(auth))
        if walk.organizational_domain != self.psl_org:
            found.notes.append(
                f"Organizational domain: {walk.organizational_domain} by RFC 9989's DNS tree walk, "
                f"{self.psl_org} by the public suffix list that RFC 7489 receivers use."
            )
        return self.verdict(found)

    def own_record_problems(self, found: _Findings) -> None:
        own = self.walk.own
        if own.outcome == "multiple":
            texts = " and ".join(f'"{t}"' for t in own.dmarc_texts)
            fallback = (
                f"they fall back to the record at {found.applicable.name}"
                if found.applicable is not None
                else "no DMARC policy applies"
            )
            found.add(
                DmarcReason.MULTIPLE_RECORDS,
                f"{own.name} holds {len(own.dmarc_texts)} DMARC records ({texts}); receivers discard them all "
                f"(RFC 9989 section 4.10), so {fallback}. Keep exactly one.",
            )
        elif own.outcome == "none":
            near = [t for t in own.texts if "dmarc1" in t.lower()]
            if near:
                found.add(
                    DmarcReason.SYNTAX_ERROR,
                    f'{own.name} holds "{near[0]}", which receivers do not read as DMARC: {near_miss_reason(near[0])}.',
                )

    async def record_problems(self, found: _Findings, applicable: WalkStep, record: DmarcRecord) -> None:
        inherited = self.walk.inherited
        exists = True
        if inherited and record.np is not None:
            exists = (await self.lookup.txt(self.domain)).status is not Status.NXDOMAIN
        found.policy = policy = effective_policy(record, inherited=inherited, exists=exists)
        for problem in record.problems:
            found.add(DmarcReason.SYNTAX_ERROR, f"The DMARC record at {applicable.name} has an invalid tag: {problem}.")
        if policy is None or policy.rank < self.minimum.rank:
            found.add(DmarcReason.POLICY_TOO_WEAK, self.weak_message(applicable, record, policy, exists=exists))
        published = {_address_key(u) for u in record.rua}
        missing = [a for a in self.wanted if _address_key(a) not in published]
        if missing:
            found.add(
                DmarcReason.REPORT_ADDRESS_MISSING,
                f"The DMARC record at {applicable.name} does not send aggregate reports to {', '.join(missing)} "
                f"(rua={','.join(record.rua) or 'absent'}).",
            )
        found.notes += [f"In {applicable.name}: {w}." for w in record.warnings]
        if record.testing:
            found.notes.append(
                f"{applicable.name} has t=y: receivers apply the policy one level weaker while you test."
            )

    def verdict(self, found: _Findings) -> DmarcVerdict:
        walk, record, applicable, policy = self.walk, found.record, found.applicable, found.policy
        suggestion: str | None = None
        if found.problems:
            suggestion = propose_record(
                self.domain,
                minimum_policy=self.minimum,
                report_addresses=self.wanted,
                current=record,
                inherited=walk.inherited,
            )
            own = applicable is not None and applicable.domain == self.domain
            if own and record is not None and suggestion == "; ".join(f"{n}={v}" for n, v in record.tags):
                suggestion = None  # the record is right; what is missing is elsewhere (a destination's consent)
            reason = found.problems[0][0]
            message = " ".join(text for _, text in found.problems)
            if suggestion is not None:
                message += f" Publish this TXT record at {self.own_name}: {format_txt_strings(suggestion)}"
        else:
            reason = DmarcReason.READY
            where = ""
            if applicable is not None and applicable.domain != self.domain:
                where = f" (inherited from {applicable.domain})"
            applied = policy.value if policy is not None else "none"
            name = applicable.name if applicable is not None else self.own_name
            message = (
                f"{name}{where} gives {self.domain} the policy {applied}, at least the required {self.minimum.value}."
            )
        notes = ([self.alignment_note(record)] if record is not None else []) + found.notes
        if notes:
            message += " " + " ".join(notes)
        return DmarcVerdict(
            domain=self.domain,
            reason=reason,
            status=status_for(reason.value, ready=reason is DmarcReason.READY),
            message=message,
            record=record.text if record else None,
            record_name=applicable.name if applicable else None,
            policy_domain=applicable.domain if applicable else None,
            organizational_domain=walk.organizational_domain,
            psl_organizational_domain=self.psl_org,
            effective_policy=policy,
            adkim=record.adkim if record else None,
            aspf=record.aspf if record else None,
            suggested_name=self.own_name,
            suggested_record=suggestion,
            report_authorizations=tuple(found.authorizations),
            warnings=(record.warnings if record else ()),
            walked=tuple(s.name for s in walk.steps),
        )

    def weak_message(self, step: WalkStep, record: DmarcRecord, policy: DmarcPolicy | None, *, exists: bool) -> str:
        if self.walk.inherited:
            tag = "np" if (not exists and record.np) else "sp" if record.sp else "p"
            how = f"{self.domain} has no record of its own, so receivers apply {tag}= of {step.name}"
        else:
            tag = "p"
            how = f"{step.name} says p={record.p.value if record.p else '(none valid)'}"
        written = record.value(tag)
        testing = " and t=y (testing) lowers it one level" if record.testing else ""
        applied = policy.value if policy is not None else "no policy"
        return (
            f"The DMARC policy for {self.domain} is too weak: {how} ({tag}={written}){testing}, so receivers apply "
            f"{applied}, below the required {self.minimum.value}."
        )

    def alignment_note(self, record: DmarcRecord) -> str:
        dkim = "strict" if record.adkim == "s" else "relaxed"
        spf = "strict" if record.aspf == "s" else "relaxed"
        note = f"Alignment: DKIM {dkim} (adkim={record.adkim}), SPF {spf} (aspf={record.aspf})."
        if record.adkim == "s":
            note += f" With adkim=s the DKIM signature must carry d={self.domain} exactly."
        if record.aspf == "s":
            note += (
                f" With aspf=s the bounce (MAIL FROM) domain must be {self.domain} exactly; providers that use "
                "their own bounce domain pass DMARC only through DKIM."
            )
        return note

    def unauthorized_message(self, auth: ReportAuthorization) -> str:
        return (
            f"{auth.uri} is outside {auth.policy_domain}'s organizational domain ({auth.why_external}) and "
            f"{auth.destination} has not agreed to receive its reports, so receivers send none there. The owner "
            f'of {auth.destination} must publish a TXT record at {auth.name}: "v=DMARC1".'
        )

    async def authorizations(
        self, applicable: WalkStep | None, record: DmarcRecord | None
    ) -> list[ReportAuthorization]:
        entries: dict[str, tuple[str, str, bool]] = {}
        if record is not None and applicable is not None:
            for uri in (*record.rua, *record.ruf):
                entries.setdefault(_address_key(uri), (uri, applicable.domain, True))
        for uri in self.wanted:
            entries.setdefault(_address_key(uri), (uri, self.domain, False))
        checks = [self.authorization(uri, policy_domain, listed) for uri, policy_domain, listed in entries.values()]
        results = await asyncio.gather(*checks)
        return [r for r in results if r is not None]

    async def authorization(self, uri: str, policy_domain: str, listed: bool) -> ReportAuthorization | None:
        destination = mailto_domain(uri)
        if destination is None:
            return None
        walk = self.walk
        dest_walk = await tree_walk(destination, self.lookup)
        reasons: list[str] = []
        if dest_walk.organizational_domain != walk.organizational_domain:
            reasons.append(
                f"{dest_walk.organizational_domain} is not {walk.organizational_domain} by RFC 9989's tree walk"
            )
        dest_psl = psl_organizational_domain(destination)
        if dest_psl != self.psl_org:
            reasons.append(f"{dest_psl} is not {self.psl_org} by the public suffix list")
        if not reasons:
            return ReportAuthorization(uri, destination, policy_domain, external=False, published_in_record=listed)
        try:
            name = normalize_name(report_authorization_name(policy_domain, destination))
        except InvalidDomainNameError:
            name = report_authorization_name(policy_domain, destination)
            return ReportAuthorization(
                uri,
                destination,
                policy_domain,
                True,
                name,
                False,
                "; ".join(reasons) + "; the name is too long",
                listed,
            )
        answer = await self.lookup.txt(name)
        authorized = any(is_dmarc_record(_joined(r)) for r in answer.records)
        return ReportAuthorization(uri, destination, policy_domain, True, name, authorized, "; ".join(reasons), listed)
