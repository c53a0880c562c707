"""The first two stages: resolve the provider's host name, then connect to one of its addresses.

`resolve` turns the host into addresses through the session's `Resolver` (an address literal needs none);
`connect` tries up to three of them in order and keeps the first TCP connection that opens. Both fail with
the kind of failure the classifier tells people about: no such name, DNS trouble, refused, timed out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

from postmaster.checks.smtp.resolvers import ResolutionError
from postmaster.checks.smtp.result import FailureKind, StageName
from postmaster.checks.smtp.state import SessionState

_MAX_ADDRESSES_TRIED = 3


def _address_literal(address: str) -> str:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


async def resolve(session: SessionState) -> None:
    """The RESOLVE stage: the host's addresses, best first, within the connect timeout."""
    session.current = StageName.RESOLVE
    start = time.perf_counter()
    try:
        ipaddress.ip_address(session.host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        session.addresses = [session.host]
        session.record(StageName.RESOLVE, start, detail={"addresses": session.addresses, "literal": True})
        return
    try:
        async with asyncio.timeout(session.timeouts.connect):
            addresses = await session.resolver(session.host, session.config.port)
    except ResolutionError as exc:
        raise session.failed(StageName.RESOLVE, start, exc.kind, exc.detail) from None
    except TimeoutError:
        raise session.failed(
            StageName.RESOLVE,
            start,
            FailureKind.DNS_TIMEOUT,
            f"{session.host}: no answer within {session.timeouts.connect:g}s",
        ) from None
    if not addresses:
        raise session.failed(StageName.RESOLVE, start, FailureKind.DNS_NOT_FOUND, f"{session.host}: no address")
    session.addresses = addresses
    session.record(StageName.RESOLVE, start, detail={"addresses": addresses})


async def connect(session: SessionState) -> None:
    """The CONNECT stage: a TCP connection to the first of (at most three) addresses that accepts one."""
    session.current = StageName.CONNECT
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    port = session.config.port
    attempts: list[str] = []
    kinds: list[FailureKind] = []
    for address in session.addresses[:_MAX_ADDRESSES_TRIED]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(session.timeouts.connect):
                await loop.sock_connect(sock, (address, port))
        except TimeoutError:
            sock.close()
            kinds.append(FailureKind.CONNECT_TIMEOUT)
            attempts.append(f"{address} port {port}: no answer within {session.timeouts.connect:g}s")
        except ConnectionRefusedError:
            sock.close()
            kinds.append(FailureKind.CONNECT_REFUSED)
            attempts.append(f"{address} port {port}: connection refused")
        except OSError as exc:
            sock.close()
            kinds.append(FailureKind.CONNECT_ERROR)
            attempts.append(f"{address} port {port}: {exc.strerror or exc}")
        except BaseException:
            sock.close()
            raise
        else:
            session.sock = sock
            session.address = address
            session.peer = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
            if session.helo is None:
                session.helo = _address_literal(sock.getsockname()[0])
            session.record(StageName.CONNECT, start, detail={"address": address, "failed_attempts": attempts})
            return
    if kinds and all(k is FailureKind.CONNECT_REFUSED for k in kinds):
        kind = FailureKind.CONNECT_REFUSED
    elif FailureKind.CONNECT_TIMEOUT in kinds:
        kind = FailureKind.CONNECT_TIMEOUT
    else:
        kind = FailureKind.CONNECT_ERROR
    raise session.failed(StageName.CONNECT, start, kind, "; ".join(attempts) or "no address to connect to")
