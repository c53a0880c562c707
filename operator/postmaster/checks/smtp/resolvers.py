"""How a probe turns the provider's host name into addresses to connect to.

A `Resolver` is any ``async (host, port) -> [address, ...]`` that raises `ResolutionError` when it cannot
answer. Three come with the probe: `system_resolver` (getaddrinfo, as every other program on the machine
sees names; the default), `dns_resolver` (asks given DNS servers directly) and `lookup_resolver` (the
operator's shared, TTL-respecting DNS cache from `postmaster.checks.dns`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from postmaster.checks.smtp.result import FailureKind

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Turns (host, port) into IP address strings, best first; raises :class:`ResolutionError` when it cannot."""


class ResolutionError(Exception):
    """A name did not resolve. ``kind`` is DNS_NOT_FOUND (no such name or no address) or DNS_ERROR (try again)."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@cache
def _pool() -> ThreadPoolExecutor:
    # getaddrinfo blocks; a lookup hanging on a dead DNS server must not occupy the loop's default executor, which
    # kopf and the rest of the operator share. One pool per process, made on first use.
    return ThreadPoolExecutor(max_workers=16, thread_name_prefix="smtp-resolve")


def _unique(addresses: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (``/etc/hosts``, then DNS), as every other program on the machine sees names."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.run_in_executor(
            _pool(), socket.getaddrinfo, host, port, socket.AF_UNSPEC, socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        not_found = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        kind = FailureKind.DNS_NOT_FOUND if exc.errno in not_found else FailureKind.DNS_ERROR
        raise ResolutionError(kind, f"{host}: {exc.strerror}") from None
    return _unique([str(info[4][0]) for info in infos])


def dns_resolver(nameservers: Sequence[str], port: int = 53) -> Resolver:
    """A resolver that asks the given DNS servers directly (dnspython), for A then AAAA records."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = list(nameservers)
    resolver.port = port

    async def resolve(host: str, _port: int) -> list[str]:
        addresses: list[str] = []
        errors: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(host, rdtype)
            except dns.resolver.NXDOMAIN:
                raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: no such domain (NXDOMAIN)") from None
            except dns.resolver.NoAnswer:
                continue
            except dns.exception.Timeout:
                errors.append(f"{rdtype} lookup timed out")
            except dns.exception.DNSException as exc:
                errors.append(f"{rdtype} lookup failed: {exc}")
            else:
                addresses.extend(str(r) for r in answer)
        if addresses:
            return _unique(addresses)
        if errors:
            raise ResolutionError(FailureKind.DNS_ERROR, f"{host}: " + "; ".join(errors))
        raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: the name has no A or AAAA record")

    return resolve


def lookup_resolver(lookup: Any) -> Resolver:
    """Resolve through the operator's shared DNS layer (a :class:`postmaster.checks.dns.DnsLookup`, e.g. its
    ``DnsResolver``), so SMTP hosts share the one TTL-respecting cache with the SPF/DKIM/DMARC checks."""
    from postmaster.checks import dns as shared

    async def resolve(host: str, _port: int) -> list[str]:
        try:
            answers = [await lookup.a(host), await lookup.aaaa(host)]
        except shared.InvalidDomainNameError as exc:
            raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: {exc}") from None
        except shared.DnsTimeoutError as exc:
            raise ResolutionError(FailureKind.DNS_TIMEOUT, str(exc)) from None
        except shared.DnsTransientError as exc:
            raise ResolutionError(FailureKind.DNS_ERROR, str(exc)) from None
        if answers[0].status is shared.Status.NXDOMAIN:
            raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: no such domain (NXDOMAIN)")
        addresses = [str(record) for answer in answers for record in answer.records]
        if not addresses:
            raise ResolutionError(FailureKind.DNS_NOT_FOUND, f"{host}: the name has no A or AAAA record")
        return _unique(addresses)

    return resolve
