"""Asynchronous DNS for the checks: one shared, TTL-respecting cache and outcomes that keep errors apart.

The checks (SPF now, DKIM and DMARC later) ask a `DnsLookup` for typed answers. `DnsResolver` is the real
one, built on dnspython's asyncio query functions; the SPF unit tests bring an in-memory one.

Outcomes a lookup can have:

* an `Answer` whose `status` is `FOUND` (records present), `NXDOMAIN` (the name does not exist) or
  `NODATA` (the name exists, no records of that type): facts about the world, cached for their TTL
  (negative answers for the SOA's negative TTL, RFC 2308);
* a `DnsTimeoutError` or `DnsServerFailureError` exception: transient, never cached and never a verdict. A caller
  reports them as condition status ``Unknown`` with reasons ``DNSTimeout`` / ``DNSServerFailure``.

Two ways to pick the servers asked:

* *recursive* (the default): the configured `nameservers` (``host:port``), or the system's resolv.conf;
* *authoritative*: the configured servers are used only to find the zone of a name (its SOA, walking up
  the labels), the zone's NS names and their addresses; the question itself then goes to those
  authoritative servers, as cert-manager's DNS-01 self-check does. This sees a freshly published record
  before a recursive resolver's cache expires.

The cache is shared by every check holding the same `DnsCache` (the operator keeps one per process):
an answer is reused until its TTL runs out, and identical questions in flight at the same moment are
sent once and answered together. `DnsStats.queries_sent` counts the messages that really left.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset

__all__ = [
    "Answer",
    "CnameLoopError",
    "DnsCache",
    "DnsError",
    "DnsLookup",
    "DnsResolver",
    "DnsServerFailureError",
    "DnsStats",
    "DnsTimeoutError",
    "IPAddress",
    "InvalidDomainNameError",
    "MxRecord",
    "Nameserver",
    "Status",
    "TxtRecord",
    "normalize_name",
    "parse_nameserver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
TxtRecord = tuple[bytes, ...]
"""One TXT record: its character-strings, in order, as the wire carries them (each at most 255 bytes)."""

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Status(StrEnum):
    """What an authoritative answer said about a name and type."""

    FOUND = "found"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class Answer(Generic[T_co]):
    """A definitive answer. `records` is empty unless `status` is `FOUND`."""

    name: str
    status: Status
    records: tuple[T_co, ...] = ()
    ttl: float = 0.0
    cname_chain: tuple[str, ...] = ()
    """Names passed through on the way, the queried name first, when the name is an alias."""

    @property
    def canonical_name(self) -> str:
        return self.cname_chain[-1] if self.cname_chain else self.name

    @property
    def is_void(self) -> bool:
        """No records: NXDOMAIN or NODATA (RFC 7208 section 4.6.4 calls these void lookups)."""
        return not self.records


@dataclass(frozen=True, slots=True, order=True)
class MxRecord:
    preference: int
    exchange: str


class DnsError(Exception):
    """Base of the DNS layer's errors."""


class InvalidDomainNameError(DnsError, ValueError):
    """The name cannot be asked: an empty label, a label over 63 octets or a name over 255 octets."""


class DnsTransientError(DnsError):
    """No definitive answer this time. Never cached; a check reports it as status Unknown."""

    reason = "DNSServerFailure"

    def __init__(self, name: str, rdtype: str, detail: str) -> None:
        super().__init__(f"{rdtype} {name}: {detail}")
        self.name = name
        self.rdtype = rdtype
        self.detail = detail


class DnsTimeoutError(DnsTransientError):
    """No server answered in time."""

    reason = "DNSTimeout"


class DnsServerFailureError(DnsTransientError):
    """Servers answered SERVFAIL, REFUSED or another error code, or could not be reached."""

    reason = "DNSServerFailure"


class CnameLoopError(DnsServerFailureError):
    """An alias chain loops or is too long. Recursive resolvers answer SERVFAIL for this too."""


class DnsLookup(Protocol):
    """What a check needs from DNS. Each method returns a definitive `Answer` or raises `DnsTransientError`.

    Names are given without a trailing dot; answers carry names lower-cased without a trailing dot.
    """

    async def txt(self, name: str) -> Answer[TxtRecord]: ...

    async def a(self, name: str) -> Answer[ipaddress.IPv4Address]: ...

    async def aaaa(self, name: str) -> Answer[ipaddress.IPv6Address]: ...

    async def mx(self, name: str) -> Answer[MxRecord]: ...

    async def ptr(self, address: IPAddress) -> Answer[str]: ...


def normalize_name(name: str) -> str:
    """Lower-case, no trailing dot; raises `InvalidDomainNameError` for what DNS cannot carry."""
    text = name.strip()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise InvalidDomainNameError("empty domain name")
    try:
        parsed = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise InvalidDomainNameError(f"{name!r} is not a valid domain name: {exc}") from exc
    return parsed.to_text(omit_final_dot=True).lower()


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_nameserver(text: str, default_port: int = 53) -> Nameserver:
    """``127.0.0.1``, ``127.0.0.1:5353``, ``::1``, ``[::1]:5353`` -> `Nameserver`. Addresses only, no names."""
    value = text.strip()
    port = default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"nameserver {text!r}: expected [address]:port")
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = int(port_text)
    else:
        host = value
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"nameserver {text!r}: {host!r} is not an IP address") from exc
    if not 0 < port < 65536:
        raise ValueError(f"nameserver {text!r}: port {port} out of range")
    return Nameserver(host, port)


@dataclass(slots=True)
class DnsStats:
    """Counters for one cache (and so for every resolver sharing it)."""

    queries_sent: int = 0
    """DNS messages sent on the wire: each UDP try, each TCP retry after truncation, each server tried."""
    tcp_fallbacks: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    """Questions answered by joining an identical question already in flight."""
    names_asked: set[tuple[str, str]] = field(default_factory=set)
    """Distinct (name, type) pairs sent to a server."""


@dataclass(frozen=True, slots=True)
class _Step:
    """What one server said about one name and type, before any alias is followed."""

    status: Status
    rrset: tuple[dns.rdata.Rdata, ...] = ()
    cname: str | None = None
    ttl: float = 0.0


_CacheKey = tuple[Hashable, str, int]


class DnsCache:
    """TTL-respecting answers plus coalescing of identical in-flight questions.

    Shared across checks: keep one per process and hand it to every `DnsResolver`. Entries are keyed by
    the resolver's view (which servers it asks) as well as the question, so resolvers pointed at
    different servers never see each other's answers.
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        max_ttl: float = 86_400.0,
    ) -> None:
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.stats = DnsStats()
        self._clock = clock
        self._entries: dict[_CacheKey, tuple[float, _Step]] = {}
        self._inflight: dict[_CacheKey, asyncio.Task[_Step]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def _get(self, key: _CacheKey) -> _Step | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, step = hit
        remaining = expires - self._clock()
        if remaining <= 0:
            del self._entries[key]
            return None
        return _Step(step.status, step.rrset, step.cname, remaining)

    def _put(self, key: _CacheKey, step: _Step) -> None:
        ttl = min(step.ttl, self.max_ttl)
        if ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[key] = (self._clock() + ttl, step)

    def _evict(self) -> None:
        """Drop what expired, then the oldest entries down to nine tenths of the bound: one pass over the cache
        makes room for many insertions, so a full cache costs no more per answer than an empty one."""
        now = self._clock()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        keep = self.max_entries - max(1, self.max_entries // 10)
        while len(self._entries) > keep:
            del self._entries[next(iter(self._entries))]

    async def _get_or_fetch(self, key: _CacheKey, fetch: Callable[[], Awaitable[_Step]]) -> _Step:
        cached = self._get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        task = self._inflight.get(key)
        if task is not None:
            self.stats.coalesced += 1
        else:

            async def run() -> _Step:
                try:
                    step = await fetch()
                    self._put(key, step)
                    return step
                finally:
                    self._inflight.pop(key, None)

            task = asyncio.ensure_future(run())
            # When every waiter was cancelled (a check loop stopped), nobody reads the outcome: mark a
            # failure as seen here, so asyncio does not log "Task exception was never retrieved".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[key] = task
        # shield: one waiter being cancelled must not cancel the question for the others.
        return await asyncio.shield(task)


def _system_nameservers() -> tuple[Nameserver, ...]:
    try:
        configured = dns.resolver.Resolver(configure=True)
    except dns.exception.DNSException:
        return (Nameserver("127.0.0.1"),)
    return tuple(Nameserver(str(ns), configured.port) for ns in configured.nameservers) or (Nameserver("127.0.0.1"),)


_TRANSIENT_RCODES_TEXT = {
    dns.rcode.SERVFAIL: "SERVFAIL",
    dns.rcode.REFUSED: "REFUSED",
    dns.rcode.NOTIMP: "NOTIMP",
    dns.rcode.FORMERR: "FORMERR",
}


class DnsResolver:
    """The real `DnsLookup`: asks DNS servers over UDP (TCP when truncated) through a shared `DnsCache`.

    `timeout` bounds each message sent; `lifetime` bounds one whole question, alias chain and server
    discovery included. Every server is tried `attempts` times before the question fails as transient.
    """

    def __init__(
        self,
        nameservers: Sequence[str | Nameserver] | None = None,
        *,
        authoritative: bool = False,
        authoritative_port: int = 53,
        timeout: float = 2.0,
        lifetime: float = 6.0,
        attempts: int = 2,
        cache: DnsCache | None = None,
        max_cname_chain: int = 12,
        edns_payload: int = 1232,
    ) -> None:
        if nameservers is None:
            servers = _system_nameservers()
        else:
            servers = tuple(ns if isinstance(ns, Nameserver) else parse_nameserver(ns) for ns in nameservers)
        if not servers:
            raise ValueError("at least one nameserver is needed")
        self.nameservers = servers
        self.authoritative = authoritative
        self.authoritative_port = authoritative_port
        self.timeout = timeout
        self.lifetime = lifetime
        self.attempts = max(1, attempts)
        self.cache = cache if cache is not None else DnsCache()
        self.max_cname_chain = max_cname_chain
        self.edns_payload = edns_payload
        self._view: Hashable = ("recursive", servers)

    @property
    def stats(self) -> DnsStats:
        return self.cache.stats

    # -- DnsLookup ---------------------------------------------------------------------------------

    async def txt(self, name: str) -> Answer[TxtRecord]:
        answer = await self.resolve(name, dns.rdatatype.TXT)
        return _convert(answer, lambda rd: tuple(rd.strings))  # type: ignore[attr-defined]

    async def a(self, name: str) -> Answer[ipaddress.IPv4Address]:
        answer = await self.resolve(name, dns.rdatatype.A)
        return _convert(answer, lambda rd: ipaddress.IPv4Address(rd.address))  # type: ignore[attr-defined]

    async def aaaa(self, name: str) -> Answer[ipaddress.IPv6Address]:
        answer = await self.resolve(name, dns.rdatatype.AAAA)
        return _convert(answer, lambda rd: ipaddress.IPv6Address(rd.address))  # type: ignore[attr-defined]

    async def mx(self, name: str) -> Answer[MxRecord]:
        answer = await self.resolve(name, dns.rdatatype.MX)
        return _convert(
            answer,
            lambda rd: MxRecord(
                int(rd.preference),  # type: ignore[attr-defined]
                _host(rd.exchange),  # type: ignore[attr-defined]
            ),
        )

    async def ptr(self, address: IPAddress) -> Answer[str]:
        name = dns.reversename.from_address(str(address)).to_text(omit_final_dot=True)
        answer = await self.resolve(name, dns.rdatatype.PTR)
        return _convert(answer, lambda rd: rd.target.to_text(omit_final_dot=True).lower())  # type: ignore[attr-defined]

    async def ns(self, name: str) -> Answer[str]:
        answer = await self.resolve(name, dns.rdatatype.NS)
        return _convert(answer, lambda rd: rd.target.to_text(omit_final_dot=True).lower())  # type: ignore[attr-defined]

    # -- resolution --------------------------------------------------------------------------------

    async def resolve(self, name: str, rdtype: dns.rdatatype.RdataType) -> Answer[dns.rdata.Rdata]:
        """Resolve `name`/`rdtype`, following aliases; raw dnspython rdata in the answer."""
        qname = normalize_name(name)
        type_text = dns.rdatatype.to_text(rdtype)
        try:
            async with asyncio.timeout(self.lifetime):
                return await self._follow(qname, rdtype)
        except TimeoutError as exc:
            raise DnsTimeoutError(qname, type_text, f"no answer within {self.lifetime:g}s") from exc

    async def _follow(self, qname: str, rdtype: dns.rdatatype.RdataType) -> Answer[dns.rdata.Rdata]:
        chain = [qname]
        current = qname
        ttl = float("inf")
        while True:
            step = await self._step(current, rdtype, authoritative=self.authoritative)
            ttl = min(ttl, step.ttl)
            if step.cname is None:
                return Answer(
                    name=qname,
                    status=step.status,
                    records=step.rrset,
                    ttl=ttl if ttl != float("inf") else 0.0,
                    cname_chain=tuple(chain) if len(chain) > 1 else (),
                )
            target = step.cname
            if target in chain:
                raise CnameLoopError(
                    qname, dns.rdatatype.to_text(rdtype), "CNAME loop: " + " -> ".join([*chain, target])
                )
            if len(chain) > self.max_cname_chain:
                raise CnameLoopError(
                    qname,
                    dns.rdatatype.to_text(rdtype),
                    f"CNAME chain longer than {self.max_cname_chain}: " + " -> ".join(chain),
                )
            chain.append(target)
            current = target

    async def _step(self, name: str, rdtype: dns.rdatatype.RdataType, *, authoritative: bool) -> _Step:
        view = ("authoritative", self.nameservers, self.authoritative_port) if authoritative else self._view
        key: _CacheKey = (view, name, int(rdtype))

        async def fetch() -> _Step:
            if authoritative:
                servers = await self._authoritative_servers(name)
            else:
                servers = self.nameservers
            return await self._ask(name, rdtype, servers, recursion=not authoritative, view=view)

        return await self.cache._get_or_fetch(key, fetch)

    async def _authoritative_servers(self, name: str) -> tuple[Nameserver, ...]:
        """The servers named by the NS records of the zone holding `name`, asked directly."""
        zone = await self._zone_of(name)
        ns_names = await self._bootstrap(zone, dns.rdatatype.NS)
        hosts = sorted(rd.target.to_text(omit_final_dot=True).lower() for rd in ns_names.records)  # type: ignore[attr-defined]
        servers: list[Nameserver] = []
        for host in hosts:
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses = await self._bootstrap(host, rdtype)
                servers.extend(Nameserver(rd.address, self.authoritative_port) for rd in addresses.records)  # type: ignore[attr-defined]
        if not servers:
            raise DnsServerFailureError(name, "NS", f"zone {zone} has no reachable name server addresses")
        return tuple(servers)

    async def _zone_of(self, name: str) -> str:
        labels = name.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            answer = await self._bootstrap(candidate, dns.rdatatype.SOA, follow=False)
            if answer.status is Status.FOUND:
                return candidate
        raise DnsServerFailureError(name, "SOA", "no zone found for the name")

    async def _bootstrap(
        self, name: str, rdtype: dns.rdatatype.RdataType, *, follow: bool = True
    ) -> Answer[dns.rdata.Rdata]:
        """Ask the configured (recursive) servers, for discovery in authoritative mode."""
        current = name
        seen = [name]
        while True:
            step = await self._step(current, rdtype, authoritative=False)
            if step.cname is None:
                return Answer(name=name, status=step.status, records=step.rrset, ttl=step.ttl)
            if not follow:
                return Answer(name=name, status=Status.NODATA, ttl=step.ttl)
            if step.cname in seen or len(seen) > self.max_cname_chain:
                raise CnameLoopError(name, dns.rdatatype.to_text(rdtype), " -> ".join([*seen, step.cname]))
            seen.append(step.cname)
            current = step.cname

    async def _ask(
        self,
        name: str,
        rdtype: dns.rdatatype.RdataType,
        servers: Sequence[Nameserver],
        *,
        recursion: bool,
        view: Hashable,
    ) -> _Step:
        type_text = dns.rdatatype.to_text(rdtype)
        failures: list[str] = []
        timed_out = 0
        for _ in range(self.attempts):
            for server in servers:
                query = dns.message.make_query(
                    name + ".",
                    rdtype,
                    use_edns=0,
                    payload=self.edns_payload,
                    flags=dns.flags.RD if recursion else 0,
                )
                try:
                    response = await self._send(query, server, name, type_text)
                except dns.exception.Timeout:
                    timed_out += 1
                    failures.append(f"{server}: timeout after {self.timeout:g}s")
                    continue
                except (OSError, EOFError, dns.exception.DNSException) as exc:  # EOFError: TCP closed early
                    failures.append(f"{server}: {exc.__class__.__name__}: {exc}")
                    continue
                rcode = response.rcode()
                if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return self._interpret(name, rdtype, response, view)
                failures.append(f"{server}: {_TRANSIENT_RCODES_TEXT.get(rcode, dns.rcode.to_text(rcode))}")
        detail = "; ".join(dict.fromkeys(failures))
        if timed_out == len(failures):
            raise DnsTimeoutError(name, type_text, detail)
        raise DnsServerFailureError(name, type_text, detail)

    async def _send(
        self, query: dns.message.Message, server: Nameserver, name: str, type_text: str
    ) -> dns.message.Message:
        stats = self.cache.stats
        stats.queries_sent += 1
        stats.names_asked.add((name, type_text))
        try:
            return await dns.asyncquery.udp(
                query, server.host, timeout=self.timeout, port=server.port, raise_on_truncation=True
            )
        except dns.message.Truncated:
            stats.queries_sent += 1
            stats.tcp_fallbacks += 1
            return await dns.asyncquery.tcp(query, server.host, timeout=self.timeout, port=server.port)

    def _interpret(
        self, name: str, rdtype: dns.rdatatype.RdataType, response: dns.message.Message, view: Hashable
    ) -> _Step:
        """Read what the response says about `name` itself; seed the cache with the alias chain it carries."""
        owner = dns.name.from_text(name + ".")
        step = _step_for(owner, rdtype, response)
        # The answer section often carries the rest of the chain (CNAME targets in the same zone, or a
        # recursive server's full chain): remember those steps so following the alias costs no query.
        target = step.cname
        seen = {name}
        while target is not None and target not in seen:
            seen.add(target)
            follow = _step_for(dns.name.from_text(target + "."), rdtype, response, last_in_chain=True)
            if follow.status is Status.NODATA and follow.cname is None and not response.rcode():
                break  # an authoritative server may just not hold the target's zone: ask for it
            self.cache._put((view, target, int(rdtype)), follow)
            target = follow.cname
        return step


def _step_for(
    owner: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    response: dns.message.Message,
    *,
    last_in_chain: bool = False,
) -> _Step:
    for rrset in response.answer:
        if rrset.name != owner or rrset.rdclass != dns.rdataclass.IN:
            continue
        if rrset.rdtype == rdtype:
            return _Step(Status.FOUND, tuple(rrset), None, float(rrset.ttl))
    for rrset in response.answer:
        if rrset.name == owner and rrset.rdtype == dns.rdatatype.CNAME and rdtype != dns.rdatatype.CNAME:
            target = rrset[0].target.to_text(omit_final_dot=True).lower()
            return _Step(Status.FOUND, (), target, float(rrset.ttl))
    negative_ttl = _negative_ttl(response)
    chain_in_answer = any(rrset.rdtype == dns.rdatatype.CNAME for rrset in response.answer)
    if response.rcode() == dns.rcode.NXDOMAIN and (last_in_chain or not chain_in_answer):
        return _Step(Status.NXDOMAIN, (), None, negative_ttl)
    return _Step(Status.NODATA, (), None, negative_ttl)


def _negative_ttl(response: dns.message.Message) -> float:
    """RFC 2308 section 5: the smaller of the SOA's TTL and its MINIMUM field; no SOA, no caching."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return 0.0


def _host(name: dns.name.Name) -> str:
    """A host name as the checks compare them; the root (a null MX, RFC 7505) is "."."""
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


def _convert(answer: Answer[dns.rdata.Rdata], convert: Callable[[dns.rdata.Rdata], T]) -> Answer[T]:
    return Answer(
        name=answer.name,
        status=answer.status,
        records=tuple(convert(rd) for rd in answer.records),
        ttl=answer.ttl,
        cname_chain=answer.cname_chain,
    )
