"""RFC 7208 section 4's `check_host()`: evaluating a domain's SPF record for a connecting address.

`check_host(ip, domain, sender, ...)` fetches the record, walks its mechanisms in order (section 5),
follows include and redirect, expands macros (section 7), enforces section 4.6.4's limits on DNS-querying
terms and void lookups, and builds the explanation for ``fail`` (section 6.2). The returned `SpfResult`
also carries the matching term, the lookups counted and a trace.

`Evaluation` holds the state of one call. The readiness check runs it in probe mode (no address, limits
counted but not enforced) to see everything a record reaches; see `readiness`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from postmaster.checks.dns import Answer, DnsLookup, DnsResolver, DnsTransientError, IPAddress
from postmaster.checks.spf.parsing import (
    MacroExpand,
    MacroString,
    Mechanism,
    Modifier,
    SpfRecord,
    SpfSyntaxError,
    parse_macro_string,
    parse_record,
    select_spf_records,
)
from postmaster.checks.spf.result import QUALIFIER_RESULT, ProblemKind, SpfProblem, SpfResult, SpfResultCode

MAX_DNS_LOOKUPS = 10
"""Section 4.6.4: terms that query DNS (include, a, mx, ptr, exists, redirect) per evaluation."""
MAX_VOID_LOOKUPS = 2
"""Section 4.6.4: lookups answering NXDOMAIN or no records."""
MAX_NAMES_PER_LOOKUP = 10
"""Section 4.6.4: MX names (permerror beyond) and PTR names (ignored beyond) per term."""
DEFAULT_EXPLANATION = "%{d} does not designate %{i} as a host permitted to send its mail"


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
class Evaluation:
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
                result = QUALIFIER_RESULT[mechanism.qualifier]
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


@cache  # one per process is the point
def default_resolver() -> DnsResolver:
    """The process-wide resolver (system nameservers, one shared cache) used when none is given."""
    return DnsResolver()


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
    evaluation = Evaluation(
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
    return await run_evaluation(evaluation, domain, time_limit)


async def run_evaluation(evaluation: Evaluation, domain: str, time_limit: float) -> SpfResult:
    """Run `evaluation` for `domain` within `time_limit` seconds; every error becomes a permerror or temperror."""
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
