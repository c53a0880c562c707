"""SPF (RFC 7208): the `check_host()` function, and a readiness verdict for a sending domain.

`check_host(ip, domain, sender, ...)` evaluates a domain's SPF policy for a connecting address exactly as a
receiving mail server does and returns an `SpfResult`: the result, the explanation for ``fail``, the
mechanism that matched, the DNS-querying terms and void lookups counted, and a trace.

`spf_readiness(domain, authorized_includes=..., authorized_ips=..., resolver=...)` answers the operator's
question: will receivers accept mail from this domain sent through the provider? It returns an
`SpfVerdict` whose `reason` is one of `SpfReason` and whose `message` names the record and what to change.

Section numbers in comments and docstrings refer to RFC 7208.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from postmaster.checks.dns import (
    Answer,
    DnsLookup,
    DnsResolver,
    DnsTransientError,
    IPAddress,
    TxtRecord,
)

__all__ = [
    "MacroExpand",
    "MacroString",
    "Mechanism",
    "Modifier",
    "ProblemKind",
    "SpfProblem",
    "SpfReason",
    "SpfRecord",
    "SpfResult",
    "SpfResultCode",
    "SpfSyntaxError",
    "SpfVerdict",
    "check_host",
    "default_resolver",
    "format_txt_strings",
    "is_spf_record",
    "parse_macro_string",
    "parse_record",
    "select_spf_records",
    "spf_readiness",
]

MAX_DNS_LOOKUPS = 10
"""Section 4.6.4: terms that query DNS (include, a, mx, ptr, exists, redirect) per evaluation."""
MAX_VOID_LOOKUPS = 2
"""Section 4.6.4: lookups answering NXDOMAIN or no records."""
MAX_NAMES_PER_LOOKUP = 10
"""Section 4.6.4: MX names (permerror beyond) and PTR names (ignored beyond) per term."""
MAX_STRING_BYTES = 255
"""RFC 1035 section 3.3: one TXT character-string."""
DEFAULT_EXPLANATION = "%{d} does not designate %{i} as a host permitted to send its mail"


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


class SpfResultCode(StrEnum):
    """Section 2.6."""

    PASS = "pass"  # noqa: S105 - a result name, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


_QUALIFIER_RESULT = {
    "+": SpfResultCode.PASS,
    "-": SpfResultCode.FAIL,
    "~": SpfResultCode.SOFTFAIL,
    "?": SpfResultCode.NEUTRAL,
}


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


# --------------------------------------------------------------------------------------------------
# Syntax (section 12's ABNF; sections 4.6.1, 5, 6, 7.1)
# --------------------------------------------------------------------------------------------------


class SpfSyntaxError(ValueError):
    """A record, term or macro string that the ABNF does not allow."""

    def __init__(self, term: str, reason: str) -> None:
        super().__init__(f"{term!r}: {reason}")
        self.term = term
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MacroExpand:
    """``%{letter digits r delimiters}``; an upper-case letter asks for URL escaping (section 7.3)."""

    letter: str
    url_escape: bool = False
    digits: int | None = None
    reverse: bool = False
    delimiters: str = ""


MacroToken = str | MacroExpand


@dataclass(frozen=True, slots=True)
class MacroString:
    source: str
    tokens: tuple[MacroToken, ...]

    @property
    def has_macros(self) -> bool:
        return any(isinstance(token, MacroExpand) for token in self.tokens)


_MACRO_BODY = re.compile(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)")
_MACRO_LETTERS = set("slodiphcrtv")
_EXP_ONLY_LETTERS = set("crt")


def parse_macro_string(text: str, *, explain: bool = False, term: str | None = None) -> MacroString:
    """Parse a macro-string (section 7.1). `explain` allows SP and the letters c, r and t (exp text only)."""
    where = term if term is not None else text
    tokens: list[MacroToken] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            follower = text[i + 1 : i + 2]
            if follower == "%":
                literal.append("%")
                i += 2
            elif follower == "_":
                literal.append(" ")
                i += 2
            elif follower == "-":
                literal.append("%20")
                i += 2
            elif follower == "{":
                close = text.find("}", i + 2)
                if close < 0:
                    raise SpfSyntaxError(where, "macro '%{' is not closed with '}'")
                body = text[i + 2 : close]
                match = _MACRO_BODY.fullmatch(body)
                if match is None:
                    raise SpfSyntaxError(where, f"invalid macro '%{{{body}}}'")
                letter_raw, digits_text, reverse, delimiters = match.groups()
                letter = letter_raw.lower()
                if letter not in _MACRO_LETTERS:
                    raise SpfSyntaxError(where, f"unknown macro letter '{letter_raw}' in '%{{{body}}}'")
                if letter in _EXP_ONLY_LETTERS and not explain:
                    raise SpfSyntaxError(
                        where, f"macro letter '{letter_raw}' is allowed only in exp text (section 7.2)"
                    )
                digits = int(digits_text) if digits_text else None
                if digits == 0:
                    raise SpfSyntaxError(where, f"macro '%{{{body}}}' keeps zero parts (section 7.3)")
                if literal:
                    tokens.append("".join(literal))
                    literal = []
                tokens.append(MacroExpand(letter, letter_raw.isupper(), digits, bool(reverse), delimiters))
                i = close + 1
            else:
                raise SpfSyntaxError(where, "'%' must be followed by '{', '%', '_' or '-' (section 7.1)")
        elif "\x21" <= char <= "\x7e" or (explain and char == " "):
            literal.append(char)
            i += 1
        else:
            raise SpfSyntaxError(where, f"character {char!r} is not allowed here")
    if literal:
        tokens.append("".join(literal))
    return MacroString(text, tuple(tokens))


_TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")


def _parse_domain_spec(text: str, term: str) -> MacroString:
    """domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand."""
    if not text:
        raise SpfSyntaxError(term, "a domain is required after ':' or '='")
    spec = parse_macro_string(text, term=term)
    last = spec.tokens[-1]
    if isinstance(last, MacroExpand) or text.endswith(("%%", "%_", "%-")):
        return spec
    body = last[:-1] if last.endswith(".") else last
    dot = body.rfind(".")
    if dot < 0 and len(spec.tokens) == 1:
        raise SpfSyntaxError(term, f"'{text}' is not a fully qualified domain name")
    toplabel = body[dot + 1 :]
    if dot < 0 or not _TOPLABEL.fullmatch(toplabel):
        raise SpfSyntaxError(term, f"'{text}' does not end in a valid top-level label (section 4.6.1, domain-end)")
    return spec


_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)", re.DOTALL)
_MECHANISM_NAME = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)(.*)", re.DOTALL)
_DUAL_CIDR = re.compile(r"(?:/(0|[1-9][0-9]*))?(?://(0|[1-9][0-9]*))?\Z")
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4_NETWORK = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}")


@dataclass(frozen=True, slots=True)
class Mechanism:
    """A directive: qualifier and mechanism (section 4.6.2, section 5)."""

    text: str
    qualifier: str
    name: str
    domain_spec: MacroString | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int | None = None
    cidr6: int | None = None

    @property
    def queries_dns(self) -> bool:
        return self.name in _LOOKUP_MECHANISMS


@dataclass(frozen=True, slots=True)
class Modifier:
    text: str
    name: str
    value: MacroString


@dataclass(frozen=True, slots=True)
class SpfRecord:
    text: str
    terms: tuple[Mechanism | Modifier, ...]
    redirect: Modifier | None = None
    exp: Modifier | None = None

    @property
    def mechanisms(self) -> tuple[Mechanism, ...]:
        return tuple(term for term in self.terms if isinstance(term, Mechanism))

    @property
    def all(self) -> Mechanism | None:
        return next((m for m in self.mechanisms if m.name == "all"), None)


def is_spf_record(text: str) -> bool:
    """Section 4.5: the version section "v=spf1", any case, ended by a space or the end of the record."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def _cidr(value: str | None, limit: int, term: str) -> int | None:
    if value is None:
        return None
    number = int(value)
    if number > limit:
        raise SpfSyntaxError(term, f"prefix length /{number} is over {limit}")
    return number


def _network(kind: str, address: str, length: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """ip4-network is four qnums without leading zeros; ip6-network is RFC 4291 text without a zone."""
    try:
        if kind == "ip4":
            if _IP4_NETWORK.fullmatch(address):
                return ipaddress.IPv4Network(f"{address}/{length}", strict=False)
        elif "%" not in address and "/" not in address:
            return ipaddress.IPv6Network(f"{address}/{length}", strict=False)
    except ValueError:
        return None
    return None


def _parse_mechanism(term: str) -> Mechanism:
    qualifier = "+"
    body = term
    if body[:1] in _QUALIFIER_RESULT:
        qualifier, body = body[0], body[1:]
    match = _MECHANISM_NAME.fullmatch(body)
    name = match.group(1).lower() if match else ""
    if name not in _MECHANISMS or match is None:
        raise SpfSyntaxError(term, "unknown mechanism (section 5)")
    rest = match.group(2)
    if name == "all":
        if rest:
            raise SpfSyntaxError(term, "'all' takes no argument")
        return Mechanism(term, qualifier, name)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(term, f"'{name}' needs an address: {name}:<address>[/<prefix>]")
        address, slash, prefix = rest[1:].partition("/")
        limit = 32 if name == "ip4" else 128
        if slash and not re.fullmatch(r"0|[1-9][0-9]{0,2}", prefix):
            raise SpfSyntaxError(term, f"invalid prefix length '/{prefix}'")
        length = limit if not slash else _cidr(prefix, limit, term) or 0
        network = _network(name, address, length)
        if network is None:
            raise SpfSyntaxError(term, f"'{address}' is not an IPv{name[-1]} address")
        return Mechanism(term, qualifier, name, network=network)
    cidr4: int | None = None
    cidr6: int | None = None
    if name in ("a", "mx"):
        cidr = _DUAL_CIDR.search(rest)
        if cidr is not None and cidr.group(0):
            cidr4 = _cidr(cidr.group(1), 32, term)
            cidr6 = _cidr(cidr.group(2), 128, term)
            rest = rest[: cidr.start()]
    if not rest:
        if name in ("include", "exists"):
            raise SpfSyntaxError(term, f"'{name}' needs a domain: {name}:<domain>")
        return Mechanism(term, qualifier, name, cidr4=cidr4, cidr6=cidr6)
    if not rest.startswith(":"):
        raise SpfSyntaxError(term, f"unexpected '{rest}' after '{name}'")
    spec = _parse_domain_spec(rest[1:], term)
    return Mechanism(term, qualifier, name, domain_spec=spec, cidr4=cidr4, cidr6=cidr6)


def parse_record(text: str) -> SpfRecord:
    """Parse a whole record (section 4.6). Any syntax error anywhere makes the record a permerror."""
    if not is_spf_record(text):
        raise SpfSyntaxError(text[:20], "an SPF record starts with 'v=spf1'")
    terms: list[Mechanism | Modifier] = []
    redirect: Modifier | None = None
    exp: Modifier | None = None
    # Section 4.6.1: terms are separated by one or more SP; nothing else separates them.
    for raw in text[6:].split(" "):
        if not raw:
            continue
        modifier = _MODIFIER.fullmatch(raw)
        if modifier is not None:
            name = modifier.group(1).lower()
            value = modifier.group(2)
            if name in ("redirect", "exp"):
                parsed = Modifier(raw, name, _parse_domain_spec(value, raw))
                if (redirect if name == "redirect" else exp) is not None:
                    raise SpfSyntaxError(raw, f"'{name}' appears more than once (section 6)")
                if name == "redirect":
                    redirect = parsed
                else:
                    exp = parsed
            else:
                # Section 6: unknown modifiers are ignored, but must still be syntactically valid.
                parsed = Modifier(raw, name, parse_macro_string(value, term=raw))
            terms.append(parsed)
        else:
            terms.append(_parse_mechanism(raw))
    return SpfRecord(text, tuple(terms), redirect, exp)


def select_spf_records(records: Sequence[TxtRecord]) -> list[str]:
    """Section 4.5 (and 3.3): join each TXT record's strings without spaces, keep those that are SPF."""
    selected: list[str] = []
    for record in records:
        joined = b"".join(record)
        if joined[:6].lower() == b"v=spf1" and (len(joined) == 6 or joined[6:7] == b" "):
            selected.append(joined.decode("utf-8", errors="replace"))
    return selected


def format_txt_strings(text: str) -> str:
    """The record as zone-file character-strings, split to fit 255 bytes each (section 3.3)."""
    data = text.encode()
    chunks = [data[i : i + MAX_STRING_BYTES] for i in range(0, len(data), MAX_STRING_BYTES)] or [b""]
    return " ".join('"' + chunk.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


class _PermError(Exception):
    def __init__(self, problem: SpfProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _TempError(Exception):
    def __init__(self, problem: SpfProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: SpfResultCode
    mechanism: str | None = None
    domain: str | None = None
    explanation: str | None = None


def _valid_target(name: str) -> bool:
    """Section 4.3: a multi-label name with no empty label and no label over 63 octets."""
    text = name[:-1] if name.endswith(".") else name
    labels = text.split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels) and len(text) <= 253 and text.isascii()


def _truncate_name(name: str) -> str:
    """Section 7.3: drop labels from the left until the name fits 253 characters."""
    text = name[:-1] if name.endswith(".") else name
    while len(text) > 253 and "." in text:
        text = text.split(".", 1)[1]
    return text


def _ip_in(ip: IPAddress, address: IPAddress, prefix: int) -> bool:
    if ip.version != address.version:
        return False
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return ip in network


def _nibbles(ip: ipaddress.IPv6Address) -> str:
    return ".".join(ip.exploded.replace(":", ""))


@dataclass
class _Evaluation:
    """State shared by one `check_host()` call and all the includes and redirects it follows."""

    resolver: DnsLookup
    ip: IPAddress | None
    """None in probe mode: no address mechanism matches, every reachable term is evaluated."""
    macro_ip: IPAddress
    sender: str
    helo: str
    receiver: str
    max_lookups: int = MAX_DNS_LOOKUPS
    max_void_lookups: int = MAX_VOID_LOOKUPS
    enforce_limits: bool = True
    now: Callable[[], float] = time.time
    lookups: int = 0
    void_lookups: int = 0
    trace: list[str] = field(default_factory=list)
    depth: int = 0
    include_stack: list[str] = field(default_factory=list)
    # What a readiness probe wants to know, gathered along the way:
    reached_domains: list[str] = field(default_factory=list)
    loops: list[tuple[str, ...]] = field(default_factory=list)
    void_terms: list[str] = field(default_factory=list)
    top_term_costs: list[tuple[str, int]] = field(default_factory=list)

    @property
    def probe(self) -> bool:
        return self.ip is None

    def note(self, text: str) -> None:
        self.trace.append("  " * self.depth + text)

    # -- limits (section 4.6.4) ---------------------------------------------------------------------

    def count_lookup(self, domain: str, term: str) -> None:
        self.lookups += 1
        if self.lookups > self.max_lookups and self.enforce_limits:
            raise _PermError(
                SpfProblem(
                    ProblemKind.TOO_MANY_LOOKUPS,
                    domain,
                    term,
                    f"more than {self.max_lookups} DNS-querying terms (section 4.6.4)",
                )
            )
        if self.lookups > 100:  # a probe walks on past the limit to count, but not forever
            raise _PermError(SpfProblem(ProblemKind.TOO_MANY_LOOKUPS, domain, term, "over 100 DNS-querying terms"))

    def count_void(self, domain: str, term: str, answer: Answer[object]) -> None:
        self.void_lookups += 1
        self.void_terms.append(f"{term} in {domain} ({answer.status.value} for {answer.name})")
        self.note(f"void lookup {self.void_lookups}: {answer.name} -> {answer.status.value}")
        if self.void_lookups > self.max_void_lookups and self.enforce_limits:
            raise _PermError(
                SpfProblem(
                    ProblemKind.TOO_MANY_VOID_LOOKUPS,
                    domain,
                    term,
                    f"more than {self.max_void_lookups} lookups returned no records (section 4.6.4)",
                )
            )

    def transient(self, exc: DnsTransientError, domain: str, term: str | None) -> _TempError:
        kind = ProblemKind.DNS_TIMEOUT if exc.reason == "DNSTimeout" else ProblemKind.DNS_SERVER_FAILURE
        self.note(f"temperror: {exc}")
        return _TempError(SpfProblem(kind, domain, term, str(exc)))

    # -- check_host (section 4) ---------------------------------------------------------------------

    async def check_host(self, domain: str, *, explain: bool, role: str = "") -> tuple[_Outcome, str | None]:
        """Evaluate `domain`'s record; returns the outcome and the record text. Errors raise."""
        if not _valid_target(domain):
            self.note(f"{domain!r} is not a valid multi-label domain name: none (section 4.3)")
            return _Outcome(SpfResultCode.NONE), None
        try:
            answer = await self.resolver.txt(domain)
        except DnsTransientError as exc:
            raise self.transient(exc, domain, role or None) from exc
        if role and answer.is_void:
            self.count_void(domain, role, answer)
        records = select_spf_records(answer.records)
        if not records:
            self.note(f"{domain}: no SPF record ({answer.status.value}): none (section 4.5)")
            return _Outcome(SpfResultCode.NONE), None
        if len(records) > 1:
            raise _PermError(
                SpfProblem(
                    ProblemKind.MULTIPLE_RECORDS,
                    domain,
                    None,
                    f"{len(records)} SPF records published; exactly one is allowed (section 4.5)",
                )
            )
        text = records[0]
        self.note(f"{domain}: {text!r}")
        try:
            record = parse_record(text)
        except SpfSyntaxError as exc:
            raise _PermError(SpfProblem(ProblemKind.SYNTAX, domain, exc.term, exc.reason)) from exc
        self.reached_domains.append(domain.lower().rstrip("."))
        self.reached_domains.extend(answer.cname_chain)  # an alias of the provider's record is that record
        return await self._evaluate(record, domain, explain=explain), text

    async def _evaluate(self, record: SpfRecord, domain: str, *, explain: bool) -> _Outcome:
        top = self.depth == 0
        for mechanism in record.mechanisms:
            before = self.lookups
            self.depth += 1
            try:
                matched = await self._mechanism(mechanism, domain)
            finally:
                self.depth -= 1
            if top and mechanism.queries_dns:
                self.top_term_costs.append((mechanism.text, self.lookups - before))
            if matched:
                result = _QUALIFIER_RESULT[mechanism.qualifier]
                self.note(f"{domain}: '{mechanism.text}' matched: {result.value} (section 4.6.2)")
                explanation = None
                if result is SpfResultCode.FAIL and explain:
                    explanation = await self._explanation(record, domain)
                return _Outcome(result, mechanism.text, domain, explanation)
        # Section 5.1 ignores redirect when the record has "all"; "all" always matches, so evaluation
        # never gets here in that case.
        if record.redirect is not None:
            return await self._redirect(record.redirect, domain, explain=explain, top=top)
        self.note(f"{domain}: no mechanism matched: neutral (section 4.7)")
        return _Outcome(SpfResultCode.NEUTRAL, None, domain)

    async def _redirect(self, redirect: Modifier, domain: str, *, explain: bool, top: bool) -> _Outcome:
        before = self.lookups
        self.count_lookup(domain, redirect.text)
        target = await self.expand_domain(redirect.value, domain, redirect.text)
        self.note(f"{domain}: {redirect.text} -> {target} (section 6.1)")
        if not _valid_target(target):
            raise _PermError(
                SpfProblem(ProblemKind.INVALID_TARGET, domain, redirect.text, f"'{target}' is not a domain")
            )
        self.depth += 1
        try:
            outcome, _ = await self.check_host(target, explain=explain, role=redirect.text)
        finally:
            self.depth -= 1
        if top:
            self.top_term_costs.append((redirect.text, self.lookups - before))
        if outcome.result is SpfResultCode.NONE:
            raise _PermError(
                SpfProblem(
                    ProblemKind.NO_RECORD,
                    domain,
                    redirect.text,
                    f"the redirect target {target} has no SPF record (section 6.1)",
                )
            )
        return outcome

    # -- mechanisms (section 5) ---------------------------------------------------------------------

    async def _mechanism(self, mechanism: Mechanism, domain: str) -> bool:
        name = mechanism.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            return self.ip is not None and mechanism.network is not None and self.ip in mechanism.network
        self.count_lookup(domain, mechanism.text)
        target = domain
        if mechanism.domain_spec is not None:
            target = await self.expand_domain(mechanism.domain_spec, domain, mechanism.text)
        if name == "include":
            return await self._include(mechanism, domain, target)
        if not _valid_target(target):
            self.note(f"'{mechanism.text}': '{target}' is not a valid domain name: no match")
            return False
        if name == "a":
            return await self._a(mechanism, domain, target)
        if name == "mx":
            return await self._mx(mechanism, domain, target)
        if name == "exists":
            return await self._exists(mechanism, domain, target)
        return await self._ptr(mechanism, domain, target)

    async def _include(self, mechanism: Mechanism, domain: str, target: str) -> bool:
        """Section 5.2: pass matches; fail, softfail and neutral do not; none is a permerror."""
        key = target.lower().rstrip(".")
        if key in self.include_stack:
            loop = (*self.include_stack, key)
            self.loops.append(loop)
            self.note(f"include loop: {' -> '.join(loop)}")
            if not self.enforce_limits:
                return False  # a probe stops here; evaluation runs into the lookup limit as the RFC has it
        self.include_stack.append(key)
        try:
            outcome, _ = await self.check_host(target, explain=False, role=mechanism.text)
        finally:
            self.include_stack.pop()
        if outcome.result is SpfResultCode.NONE:
            raise _PermError(
                SpfProblem(
                    ProblemKind.NO_RECORD,
                    domain,
                    mechanism.text,
                    f"{target} has no SPF record, which makes the include a permerror (section 5.2)",
                )
            )
        return outcome.result is SpfResultCode.PASS

    async def _addresses(self, name: str) -> Answer[IPAddress]:
        """Section 5: A records for an IPv4 <ip>, AAAA for IPv6."""
        answer: Answer[IPAddress]
        if self.ip is not None and self.ip.version == 6:
            answer = await self.resolver.aaaa(name)
        else:
            answer = await self.resolver.a(name)
        return answer

    def _prefix(self, mechanism: Mechanism) -> int:
        if self.ip is not None and self.ip.version == 6:
            return 128 if mechanism.cidr6 is None else mechanism.cidr6
        return 32 if mechanism.cidr4 is None else mechanism.cidr4

    def _matches_any(self, mechanism: Mechanism, addresses: Sequence[IPAddress]) -> bool:
        if self.ip is None:
            return False
        prefix = self._prefix(mechanism)
        return any(_ip_in(self.ip, address, prefix) for address in addresses)

    async def _a(self, mechanism: Mechanism, domain: str, target: str) -> bool:
        try:
            answer = await self._addresses(target)
        except DnsTransientError as exc:
            raise self.transient(exc, domain, mechanism.text) from exc
        if answer.is_void:
            self.count_void(domain, mechanism.text, answer)
        return self._matches_any(mechanism, answer.records)

    async def _mx(self, mechanism: Mechanism, domain: str, target: str) -> bool:
        """Section 5.4, with section 4.6.4's limit of 10 MX names; no implicit MX."""
        try:
            answer = await self.resolver.mx(target)
        except DnsTransientError as exc:
            raise self.transient(exc, domain, mechanism.text) from exc
        if answer.is_void:
            self.count_void(domain, mechanism.text, answer)
            return False
        exchanges = [mx.exchange for mx in sorted(answer.records) if mx.exchange not in ("", ".")]
        if len(exchanges) > MAX_NAMES_PER_LOOKUP:
            raise _PermError(
                SpfProblem(
                    ProblemKind.TOO_MANY_MX,
                    domain,
                    mechanism.text,
                    f"{target} has {len(exchanges)} MX names; at most {MAX_NAMES_PER_LOOKUP} "
                    "may be looked up (section 4.6.4)",
                )
            )
        for exchange in exchanges:
            try:
                addresses = await self._addresses(exchange)
            except DnsTransientError as exc:
                raise self.transient(exc, domain, mechanism.text) from exc
            if self._matches_any(mechanism, addresses.records):
                return True
        return False

    async def _exists(self, mechanism: Mechanism, domain: str, target: str) -> bool:
        """Section 5.7: an A query whatever the connection's address family."""
        try:
            answer = await self.resolver.a(target)
        except DnsTransientError as exc:
            raise self.transient(exc, domain, mechanism.text) from exc
        if answer.is_void:
            self.count_void(domain, mechanism.text, answer)
            return False
        return not self.probe

    async def _ptr(self, mechanism: Mechanism, domain: str, target: str) -> bool:
        """Section 5.5: a validated name of <ip> equal to or under the target matches."""
        if self.ip is None:
            return False
        names = await self._validated_names(self.ip, domain, mechanism.text)
        wanted = target.lower().rstrip(".")
        return any(name == wanted or name.endswith("." + wanted) for name in names)

    async def _validated_names(self, ip: IPAddress, domain: str, term: str) -> list[str]:
        """Section 5.5's procedure: PTR names whose addresses include <ip>. DNS errors mean no name."""
        try:
            answer = await self.resolver.ptr(ip)
        except DnsTransientError as exc:
            self.note(f"PTR lookup for {ip} failed ({exc}): no validated name (section 5.5)")
            return []
        if answer.is_void:
            self.count_void(domain, term, answer)
            return []
        validated: list[str] = []
        for name in answer.records[:MAX_NAMES_PER_LOOKUP]:  # section 4.6.4: the rest are ignored
            try:
                addresses = await self._addresses(name)
            except DnsTransientError:
                continue  # section 5.5: skip the name, keep searching
            if ip in addresses.records:
                validated.append(name.lower().rstrip("."))
        return validated

    # -- explanation (section 6.2) ------------------------------------------------------------------

    async def _explanation(self, record: SpfRecord, domain: str) -> str:
        default = await self._expand_quietly(parse_macro_string(DEFAULT_EXPLANATION, explain=True), domain)
        if record.exp is None:
            return default
        saved = (self.lookups, self.void_lookups, self.enforce_limits)
        self.enforce_limits = False  # the explanation's lookups are not evaluation terms (section 4.6.4)
        try:
            target = _truncate_name(await self.expand(record.exp.value, domain, record.exp.text))
            if not _valid_target(target):
                return default
            answer = await self.resolver.txt(target)
            if len(answer.records) != 1:
                self.note(f"exp: {target} has {len(answer.records)} TXT records: default explanation")
                return default
            text = b"".join(answer.records[0]).decode("ascii")
            explanation = await self.expand(parse_macro_string(text, explain=True), domain, record.exp.text)
        except (DnsTransientError, SpfSyntaxError, UnicodeDecodeError, _PermError, _TempError) as exc:
            self.note(f"exp: {exc}: default explanation (section 6.2)")
            return default
        finally:
            self.lookups, self.void_lookups, self.enforce_limits = saved
        return "".join(ch for ch in explanation if " " <= ch <= "~")

    async def _expand_quietly(self, spec: MacroString, domain: str) -> str:
        try:
            return await self.expand(spec, domain, "explanation")
        except (_PermError, _TempError):
            return ""

    # -- macros (section 7) -------------------------------------------------------------------------

    async def expand_domain(self, spec: MacroString, domain: str, term: str) -> str:
        return _truncate_name(await self.expand(spec, domain, term))

    async def expand(self, spec: MacroString, domain: str, term: str) -> str:
        parts: list[str] = []
        for token in spec.tokens:
            if isinstance(token, str):
                parts.append(token)
                continue
            value = await self._macro_value(token.letter, domain, term)
            parts.append(_transform(value, token))
        return "".join(parts)

    async def _macro_value(self, letter: str, domain: str, term: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        ip = self.macro_ip
        if letter == "s":
            return self.sender
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            return _nibbles(ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
        if letter == "v":
            return "in-addr" if ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(ip)
        if letter == "r":
            return self.receiver
        if letter == "t":
            return str(int(self.now()))
        return await self._p_macro(domain, term)

    async def _p_macro(self, domain: str, term: str) -> str:
        """Section 7.3: the validated name of <ip>, preferring <domain>, then a subdomain of it; else "unknown"."""
        if self.ip is None:
            return "unknown"
        if self.enforce_limits:
            self.count_lookup(domain, term)  # section 4.6.4: %{p}'s PTR query counts like "ptr"
        names = await self._validated_names(self.ip, domain, term)
        wanted = domain.lower().rstrip(".")
        for name in names:
            if name == wanted:
                return name
        for name in names:
            if name.endswith("." + wanted):
                return name
        return names[0] if names else "unknown"


def _transform(value: str, macro: MacroExpand) -> str:
    """Section 7.3: split on the delimiters (default '.'), reverse, keep the rightmost parts, join with '.'."""
    delimiters = macro.delimiters or "."
    if macro.digits is not None or macro.reverse or macro.delimiters:
        parts = re.split("[" + re.escape(delimiters) + "]", value)
        if macro.reverse:
            parts.reverse()
        if macro.digits is not None:
            parts = parts[-macro.digits :]
        value = ".".join(parts)
    if macro.url_escape:
        value = urllib.parse.quote(value, safe="")  # leaves RFC 3986's unreserved characters alone
    return value


_default_resolver: DnsResolver | None = None


def default_resolver() -> DnsResolver:
    """The process-wide resolver (system nameservers, one shared cache) used when none is given."""
    global _default_resolver  # noqa: PLW0603 - one per process is the point
    if _default_resolver is None:
        _default_resolver = DnsResolver()
    return _default_resolver


def _parse_ip(ip: str | IPAddress) -> IPAddress:
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # an IPv4 client seen through an IPv6 socket is an IPv4 client
    return address


def _sender_address(sender: str, domain: str) -> str:
    """Section 4.3: a sender without a local-part is postmaster@<domain>."""
    text = sender.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not text:
        return f"postmaster@{domain}"
    local, at, sender_domain = text.rpartition("@")
    if not at:
        return f"postmaster@{text}"
    return f"{local or 'postmaster'}@{sender_domain}"


async def check_host(
    ip: str | IPAddress,
    domain: str,
    sender: str,
    *,
    helo: str | None = None,
    resolver: DnsLookup | None = None,
    receiver: str = "unknown",
    max_lookups: int = MAX_DNS_LOOKUPS,
    max_void_lookups: int = MAX_VOID_LOOKUPS,
    time_limit: float = 20.0,
    now: Callable[[], float] = time.time,
) -> SpfResult:
    """RFC 7208 section 4: may `ip` send mail for `domain` (the MAIL FROM or HELO identity) as `sender`?

    `helo` is the HELO/EHLO name (macro h); `receiver` this host's name (macro r, exp text only).
    `time_limit` bounds the whole evaluation (section 4.6.4 asks for at least 20 s); running out is
    a temperror.
    """
    address = _parse_ip(ip)
    evaluation = _Evaluation(
        resolver=resolver if resolver is not None else default_resolver(),
        ip=address,
        macro_ip=address,
        sender=_sender_address(sender, domain),
        helo=helo or "unknown",
        receiver=receiver,
        max_lookups=max_lookups,
        max_void_lookups=max_void_lookups,
        now=now,
    )
    return await _run(evaluation, domain, time_limit)


async def _run(evaluation: _Evaluation, domain: str, time_limit: float) -> SpfResult:
    record: str | None = None
    outcome: _Outcome
    problem: SpfProblem | None = None
    try:
        async with asyncio.timeout(time_limit):
            outcome, record = await evaluation.check_host(domain, explain=True)
    except _PermError as exc:
        problem = exc.problem
        evaluation.note(f"permerror: {problem}")
        outcome = _Outcome(SpfResultCode.PERMERROR)
    except _TempError as exc:
        problem = exc.problem
        outcome = _Outcome(SpfResultCode.TEMPERROR)
    except TimeoutError:
        problem = SpfProblem(
            ProblemKind.EVALUATION_TIMEOUT, domain, None, f"evaluation took longer than {time_limit:g}s"
        )
        evaluation.note(f"temperror: {problem.detail}")
        outcome = _Outcome(SpfResultCode.TEMPERROR)
    return SpfResult(
        result=outcome.result,
        domain=domain,
        explanation=outcome.explanation,
        mechanism=outcome.mechanism,
        matched_domain=outcome.domain,
        record=record,
        dns_lookups=evaluation.lookups,
        void_lookups=evaluation.void_lookups,
        trace=tuple(evaluation.trace),
        problem=problem,
    )


# --------------------------------------------------------------------------------------------------
# Readiness of a sending domain
# --------------------------------------------------------------------------------------------------


class SpfReason(StrEnum):
    """Reasons of the `SPFReady` condition. Stable: they are API."""

    READY = "Ready"
    RECORD_MISSING = "RecordMissing"
    MULTIPLE_RECORDS = "MultipleRecords"
    TOO_MANY_DNS_LOOKUPS = "TooManyDNSLookups"
    TOO_MANY_VOID_LOOKUPS = "TooManyVoidLookups"
    PROVIDER_NOT_AUTHORIZED = "ProviderNotAuthorized"
    PERMISSIVE_ALL = "PermissiveAll"
    SYNTAX_ERROR = "SyntaxError"
    STRING_TOO_LONG = "StringTooLong"
    DNS_TIMEOUT = "DNSTimeout"
    DNS_SERVER_FAILURE = "DNSServerFailure"


ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class SpfVerdict:
    """Whether the SPF record of a sending domain is ready for its provider.

    `status` is the condition status: ``True`` when `reason` is ``Ready``, ``Unknown`` for DNS timeouts
    and server failures (a transient state, never a verdict), ``False`` otherwise.
    """

    domain: str
    reason: SpfReason
    status: ConditionStatus
    message: str
    record: str | None = None
    suggested_record: str | None = None
    """The record to publish instead, when one can be proposed."""
    dns_lookups: int = 0
    void_lookups: int = 0
    trace: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.reason is SpfReason.READY


def _strip_prefix(value: str, prefix: str) -> str:
    return value[len(prefix) :] if value.lower().startswith(prefix) else value


def _ip_term(value: str) -> str:
    network = ipaddress.ip_network(value, strict=False)
    kind = "ip4" if network.version == 4 else "ip6"
    if network.prefixlen == network.max_prefixlen:
        return f"{kind}:{network.network_address}"
    return f"{kind}:{network}"


def _suggest(
    records: Sequence[str],
    includes: Sequence[str],
    ips: Sequence[str],
    all_qualifier: str,
) -> str:
    """One record keeping every existing term, adding the provider's, ending in a non-permissive all."""
    kept: list[str] = []
    redirect: str | None = None
    final_all: str | None = None
    for text in records:
        for term in text[6:].split(" "):
            lowered = term.lower()
            if not term:
                continue
            if lowered.lstrip("+-~?") == "all":
                if final_all is None or term.startswith("-"):
                    final_all = term
            elif lowered.startswith("redirect="):
                redirect = redirect or term
            elif lowered not in {t.lower() for t in kept}:
                kept.append(term)
    present = {t.lower() for t in kept}
    wanted = [f"include:{name}" for name in includes] if includes else [_ip_term(ip) for ip in ips]
    additions = [term for term in wanted if term.lower() not in present]
    if final_all is None:
        tail = [redirect] if redirect else [f"{all_qualifier}all"]
    elif final_all[0] in "-~":
        tail = [final_all]
    else:
        tail = [f"{all_qualifier}all"]
    return " ".join(["v=spf1", *kept, *additions, *tail])


async def spf_readiness(
    domain: str,
    *,
    authorized_includes: list[str],
    authorized_ips: list[str],
    resolver: DnsLookup | None = None,
    all_qualifier: str = "~",
    max_lookups: int = MAX_DNS_LOOKUPS,
    max_void_lookups: int = MAX_VOID_LOOKUPS,
) -> SpfVerdict:
    """Is `domain`'s SPF record ready for the provider that `authorized_includes` / `authorized_ips` describe?

    Checks, in order: the record exists once, its strings fit 255 bytes, it parses (and so does every
    record it includes), the whole include tree stays within 10 DNS-querying terms and 2 void lookups
    (counted as section 4.6.4 counts them for an address the record does not list), the provider is
    authorised (its include reachable through includes and redirects, or `check_host` passing for each
    of its addresses) and the record does not end permissively (``+all``, ``?all`` or no ``all``).
    `all_qualifier` (``~`` or ``-``) ends the records this proposes.
    """
    return await _Readiness(
        lookup=resolver if resolver is not None else default_resolver(),
        name=domain.lower().rstrip("."),
        includes=[_strip_prefix(i.strip(), "include:").lower().rstrip(".") for i in authorized_includes],
        ips=[_strip_prefix(_strip_prefix(i.strip(), "ip4:"), "ip6:") for i in authorized_ips],
        qualifier=all_qualifier if all_qualifier in ("-", "~") else "~",
        max_lookups=max_lookups,
        max_void_lookups=max_void_lookups,
    ).run()


@dataclass
class _Readiness:
    lookup: DnsLookup
    name: str
    includes: list[str]
    ips: list[str]
    qualifier: str
    max_lookups: int
    max_void_lookups: int
    record: str | None = None
    probe_result: SpfResult | None = None

    @property
    def provider(self) -> str:
        return ", ".join([*(f"include:{i}" for i in self.includes), *self.ips]) or "the provider"

    def verdict(self, reason: SpfReason, message: str, suggested: str | None = None) -> SpfVerdict:
        status: ConditionStatus = "False"
        if reason is SpfReason.READY:
            status = "True"
        elif reason in (SpfReason.DNS_TIMEOUT, SpfReason.DNS_SERVER_FAILURE):
            status = "Unknown"
        probe = self.probe_result
        return SpfVerdict(
            domain=self.name,
            reason=reason,
            status=status,
            message=message,
            record=self.record,
            suggested_record=suggested,
            dns_lookups=probe.dns_lookups if probe else 0,
            void_lookups=probe.void_lookups if probe else 0,
            trace=probe.trace if probe else (),
        )

    def transient(self, reason: str, detail: str) -> SpfVerdict:
        kind = SpfReason.DNS_TIMEOUT if reason == "DNSTimeout" else SpfReason.DNS_SERVER_FAILURE
        return self.verdict(kind, f"Could not evaluate the SPF record of {self.name} this time ({detail}); will retry.")

    def suggest(self, records: Sequence[str]) -> str:
        return _suggest(records, self.includes, self.ips, self.qualifier)

    async def run(self) -> SpfVerdict:
        name = self.name
        try:
            answer = await self.lookup.txt(name)
        except DnsTransientError as exc:
            return self.transient(exc.reason, str(exc))
        spf = [r for r in answer.records if select_spf_records([r])]
        texts = select_spf_records(spf)
        if not texts:
            suggestion = self.suggest([])
            return self.verdict(
                SpfReason.RECORD_MISSING,
                f"{name} publishes no SPF record ({answer.status.value}). "
                f"Publish this TXT record at {name}: {format_txt_strings(suggestion)}",
                suggestion,
            )
        if len(texts) > 1:
            suggestion = self.suggest(texts)
            listed = " and ".join(f'"{t}"' for t in texts)
            return self.verdict(
                SpfReason.MULTIPLE_RECORDS,
                f"{name} publishes {len(texts)} SPF records ({listed}); receivers treat that as permerror "
                f"(RFC 7208 section 4.5). Replace them with one TXT record: {format_txt_strings(suggestion)}",
                suggestion,
            )
        self.record = text = texts[0]
        longest = max(len(s) for s in spf[0])
        if longest > MAX_STRING_BYTES:
            return self.verdict(
                SpfReason.STRING_TOO_LONG,
                f"The SPF record of {name} has a character-string of {longest} bytes; one string holds at "
                f"most {MAX_STRING_BYTES}. Publish it split into strings: {format_txt_strings(text)}",
                text,
            )
        probe = _Evaluation(
            resolver=self.lookup,
            ip=None,
            macro_ip=ipaddress.IPv4Address("192.0.2.0"),
            sender=f"postmaster@{name}",
            helo=name,
            receiver="unknown",
            max_lookups=self.max_lookups,
            max_void_lookups=self.max_void_lookups,
            enforce_limits=False,
        )
        self.probe_result = result = await _run(probe, name, time_limit=30.0)
        if result.problem is not None and result.problem.kind is not ProblemKind.TOO_MANY_LOOKUPS:
            return self.problem_verdict(result.problem)
        if probe.loops:
            return self.verdict(
                SpfReason.TOO_MANY_DNS_LOOKUPS,
                f"The SPF record of {name} ({text!r}) includes itself: {' -> '.join(probe.loops[0])}. "
                f"Receivers follow the loop until the limit of {self.max_lookups} DNS lookups (RFC 7208 "
                f"section 4.6.4) and answer permerror; remove the include that closes the loop.",
            )
        if result.dns_lookups > self.max_lookups:
            costs = ", ".join(f"{term} {cost}" for term, cost in probe.top_term_costs if cost)
            counted = "over 100" if result.dns_lookups > 100 else str(result.dns_lookups)
            return self.verdict(
                SpfReason.TOO_MANY_DNS_LOOKUPS,
                f"The SPF record of {name} ({text!r}) needs {counted} DNS lookups across its includes; "
                f"RFC 7208 section 4.6.4 allows {self.max_lookups} and receivers answer permerror "
                f"beyond. Lookups per term: {costs}. Remove includes you no longer send through, "
                f"or replace a, mx, ptr and include terms with ip4:/ip6: ranges.",
            )
        if result.void_lookups > self.max_void_lookups:
            return self.verdict(
                SpfReason.TOO_MANY_VOID_LOOKUPS,
                f"The SPF record of {name} ({text!r}) makes {result.void_lookups} DNS lookups that find "
                f"nothing; RFC 7208 section 4.6.4 allows {self.max_void_lookups} before receivers answer "
                f"permerror. Remove the terms naming domains without records: " + "; ".join(probe.void_terms) + ".",
            )
        unauthorized = await self.unauthorized(set(probe.reached_domains))
        if isinstance(unauthorized, SpfVerdict):
            return unauthorized
        if unauthorized:
            suggestion = self.suggest([text])
            return self.verdict(
                SpfReason.PROVIDER_NOT_AUTHORIZED,
                f"The SPF record of {name} ({text!r}) does not authorise {self.provider} "
                f"({'; '.join(unauthorized)}). Publish instead: {format_txt_strings(suggestion)}",
                suggestion,
            )
        if result.result in (SpfResultCode.PASS, SpfResultCode.NEUTRAL):
            return self.permissive(result, text)
        return self.verdict(
            SpfReason.READY,
            f"The SPF record of {name} ({text!r}) authorises {self.provider} and uses "
            f"{result.dns_lookups} of {self.max_lookups} DNS lookups.",
        )

    def problem_verdict(self, problem: SpfProblem) -> SpfVerdict:
        name = self.name
        if problem.kind in (ProblemKind.DNS_TIMEOUT, ProblemKind.DNS_SERVER_FAILURE):
            return self.transient(problem.kind.value, str(problem))
        if problem.kind is ProblemKind.EVALUATION_TIMEOUT:
            return self.transient("DNSTimeout", str(problem))
        where = f"of {name}" if problem.domain == name else f"of {problem.domain} (reached from {name})"
        if problem.kind is ProblemKind.NO_RECORD:
            return self.verdict(
                SpfReason.RECORD_MISSING,
                f'"{problem.term}" in the SPF record {where}: {problem.detail}. Receivers answer '
                f"permerror; remove the term or point it at a domain that publishes SPF.",
            )
        if problem.kind is ProblemKind.MULTIPLE_RECORDS:
            return self.verdict(
                SpfReason.MULTIPLE_RECORDS,
                f"{problem.domain}, reached from the SPF record of {name}, publishes more than one SPF "
                f"record, so receivers answer permerror; it must publish exactly one.",
            )
        if problem.kind is ProblemKind.TOO_MANY_MX:
            return self.verdict(
                SpfReason.TOO_MANY_DNS_LOOKUPS,
                f'"{problem.term}" in the SPF record {where}: {problem.detail}. Replace it with ip4:/ip6: '
                f"terms for the mail servers.",
            )
        return self.verdict(
            SpfReason.SYNTAX_ERROR,
            f'The SPF record {where} has an invalid term "{problem.term}": {problem.detail}. Receivers '
            f"treat the whole record as permerror; correct or remove that term.",
        )

    async def unauthorized(self, reached: set[str]) -> list[str] | SpfVerdict:
        """What is missing for the provider to be authorised; empty when it is."""
        missing = [f"include:{i} is missing" for i in self.includes if i not in reached]
        if (self.includes and not missing) or not self.ips:
            return missing
        failing: list[str] = []
        for ip in self.ips:
            address = str(ipaddress.ip_network(ip, strict=False).network_address)
            check = await check_host(
                address, self.name, f"postmaster@{self.name}", helo=self.name, resolver=self.lookup
            )
            if check.result is SpfResultCode.TEMPERROR and check.problem is not None:
                return self.transient(
                    "DNSTimeout" if check.problem.kind is not ProblemKind.DNS_SERVER_FAILURE else "DNSServerFailure",
                    str(check.problem),
                )
            if check.result is not SpfResultCode.PASS:
                failing.append(f"{address} gets {check.result.value}")
        return failing

    def permissive(self, result: SpfResult, text: str) -> SpfVerdict:
        mechanism = result.mechanism
        if mechanism is None:
            how = 'has no "all" term'
        elif mechanism.lower().lstrip("+-~?") == "all":
            how = f'ends in "{mechanism}"'
            if result.matched_domain not in (None, self.name):
                how += f" (through the redirect to {result.matched_domain})"
        else:
            how = f'lets every host pass through "{mechanism}"'
        suggestion = self.suggest([text])
        return self.verdict(
            SpfReason.PERMISSIVE_ALL,
            f"The SPF record of {self.name} ({text!r}) {how}, so receivers give hosts it does not list "
            f"{result.result.value} instead of failing them. Publish instead: {format_txt_strings(suggestion)}",
            suggestion,
        )
