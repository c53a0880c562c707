"""Benchmark: one tarpit among many healthy SMTP servers delays none of their probes.

    .venv/bin/python tests/bench/bench_probe.py [--servers 50] [--limit 64] [--tarpit-timeout 5]

A child process serves N healthy aiosmtpd servers (STARTTLS, AUTH PLAIN) and one tarpit (accepts, never greets) on
free 127.0.0.1 ports, so the servers' CPU does not count against the probes. This process probes each healthy server
alone, then all of them and the tarpit at once under one global `asyncio.Semaphore(limit)`, and prints each healthy
probe's concurrent duration next to its solo one. Exits 1 if a healthy probe failed or took as long as the tarpit's
greeting timeout (that is, waited for the tarpit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trustme
from tests.fixtures.smtp import HOST, PASSWORD, USER, MailHandler, Pki, start_smtpd

from postmaster.checks.smtp import (
    AuthMethod,
    ProbeConfig,
    ProbeResult,
    Secret,
    Timeouts,
    TlsMode,
    probe,
)


async def serve(count: int) -> int:
    """The child: start the servers, print where they are, serve until stdin closes."""
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's per-session chatter
    ca = trustme.CA(organization_name="Postmaster Bench CA")
    context = Pki.server_context(ca.issue_cert("localhost", HOST))
    healthy = [await start_smtpd(MailHandler(), starttls=context, require_starttls=True) for _ in range(count)]
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()
        writer.close()

    pit = await asyncio.start_server(hold, HOST, 0)
    where = {
        "healthy": [int(s.sockets[0].getsockname()[1]) for s in healthy],
        "tarpit": int(pit.sockets[0].getsockname()[1]),
        "ca_pem": ca.cert_pem.bytes().decode(),
    }
    print(json.dumps(where), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for writer in held:
        writer.close()
    for server in [*healthy, pit]:
        server.close()
    return 0


def config(port: int, ca_pem: str, greeting: float = 5.0) -> ProbeConfig:
    return ProbeConfig(
        host=HOST,
        port=port,
        tls=TlsMode.STARTTLS,
        ca_bundle_pem=ca_pem,
        auth=AuthMethod.PLAIN,
        username=USER,
        password=Secret(PASSWORD),
        mail_from=USER,
        rcpt_to="bob@example.net",
        timeouts=Timeouts(connect=5, greeting=greeting, tls=5, command=5, total=60),
    )


async def main(servers: int, limit: int, tarpit_timeout: float) -> int:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(servers), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert child.stdin is not None
    where = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
    ports: list[int] = where["healthy"]
    ca_pem: str = where["ca_pem"]
    try:
        await probe(config(ports[0], ca_pem))  # warm up
        solo: list[ProbeResult] = [await probe(config(port, ca_pem)) for port in ports]

        limiter = asyncio.Semaphore(limit)
        started = time.perf_counter()
        tarpit = asyncio.create_task(probe(config(where["tarpit"], ca_pem, tarpit_timeout), limiter=limiter))
        together = await asyncio.gather(*(probe(config(port, ca_pem), limiter=limiter) for port in ports))
        healthy_wall = (time.perf_counter() - started) * 1000
        stuck = await tarpit
    finally:
        child.stdin.close()
        await child.wait()

    print(f"{servers} healthy servers + 1 tarpit, limit {limit}, tarpit greeting timeout {tarpit_timeout:g}s")
    print(f"{'server':>6} {'solo ms':>9} {'concurrent ms':>14} {'queued ms':>10} {'ok':>5}")
    for i, (alone, crowd) in enumerate(zip(solo, together, strict=True)):
        print(f"{i:>6} {alone.duration_ms:>9.1f} {crowd.duration_ms:>14.1f} {crowd.queued_ms:>10.1f} {crowd.ok!s:>5}")
    solo_ms = [r.duration_ms for r in solo]
    crowd_ms = [r.duration_ms + r.queued_ms for r in together]
    print(
        f"solo: median {statistics.median(solo_ms):.1f} ms, max {max(solo_ms):.1f} ms; "
        f"concurrent incl. queueing: median {statistics.median(crowd_ms):.1f} ms, max {max(crowd_ms):.1f} ms"
    )
    failure = stuck.failure
    where_stuck = f"{failure.stage.value} ({failure.kind.value})" if failure else "-"
    print(
        f"all {servers} healthy probes done {healthy_wall:.0f} ms after the start; "
        f"the tarpit probe gave up after {stuck.duration_ms:.0f} ms at {where_stuck}"
    )
    failed = [i for i, r in enumerate(together) if not r.ok]
    waited = max(crowd_ms) >= tarpit_timeout * 1000
    if failed or waited or stuck.ok:
        print(f"FAIL: failed={failed} waited_for_tarpit={waited} tarpit_ok={stuck.ok}", file=sys.stderr)
        return 1
    print("OK: no healthy probe waited for the tarpit")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--limit", type=int, default=64, help="global concurrency limit (asyncio.Semaphore)")
    parser.add_argument("--tarpit-timeout", type=float, default=5.0, help="greeting timeout of the tarpit probe")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        sys.exit(asyncio.run(serve(options.serve)))
    sys.exit(asyncio.run(main(options.servers, options.limit, options.tarpit_timeout)))
