"""Whether a sending domain's SPF record is ready for its mail provider: a reason and a message.

`spf_readiness(domain, authorized_includes=..., authorized_ips=..., resolver=...)` answers the operator's
question: will receivers accept mail from this domain sent through the provider? It returns an
`SpfVerdict` whose `reason` is one of `SpfReason` (the ``SPFReady`` condition's reasons) and whose
`message` names the record and what to change, with a `suggested_record` to publish when one can be
proposed. It relies on `evaluation` for everything RFC 7208 says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from postmaster.checks.dns import DnsLookup, DnsTransientError
from postmaster.checks.spf.evaluation import (
    MAX_DNS_LOOKUPS,
    MAX_VOID_LOOKUPS,
    Evaluation,
    check_host,
    default_resolver,
    run_evaluation,
)
from postmaster.checks.spf.parsing import MAX_STRING_BYTES, format_txt_strings, select_spf_records
from postmaster.checks.spf.result import ProblemKind, SpfProblem, SpfResult, SpfResultCode
from postmaster.checks.verdict import ConditionStatus


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
        probe = Evaluation(
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
        self.probe_result = result = await run_evaluation(probe, name, time_limit=30.0)
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
