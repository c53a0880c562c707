"""check_domain and `postmaster check domain` over real DNS (nsd), including a server that goes silent.

The zones live under top-level domains of their own (``pmdomain``, ``pmcli``) so the DMARC tree walk gets
real answers all the way up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from postmaster.checks.dkim import DkimReason, DkimSelector, generate_key, txt_value
from postmaster.checks.dmarc import DmarcReason
from postmaster.checks.dns import DnsCache, DnsResolver
from postmaster.checks.domain import DomainReport, check_domain
from postmaster.checks.spf import SpfReason, format_txt_strings
from postmaster.cli import check as cli_check
from tests.fixtures.dns import NsdServer, SilentServer, running_nsd

KEY = generate_key("rsa", 2048)
NEXT = generate_key("ed25519")
PROVIDER = "_spf.mailer.pmdomain"


def ready_zone(domain: str) -> str:
    return "\n".join(
        [
            f'@ TXT "v=spf1 include:{PROVIDER} -all"',
            f"pm20260101._domainkey TXT {format_txt_strings(txt_value(KEY))}",
            f'_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"',
        ]
    )


@pytest.fixture(scope="module")
def published(nsd: NsdServer) -> NsdServer:
    nsd.zones_bulk(
        {
            "pmdomain": "",
            "mailer.pmdomain": '_spf TXT "v=spf1 ip4:198.51.100.0/24 -all"',
            "ready.pmdomain": ready_zone("ready.pmdomain"),
            "fresh.pmdomain": "www A 192.0.2.10",
            "vendor.pmdomain": "",
        }
    )
    return nsd


def resolver(nameserver: str, *, timeout: float = 1.0) -> DnsResolver:
    return DnsResolver([nameserver], cache=DnsCache(), timeout=timeout, lifetime=3 * timeout, attempts=1)


async def check(domain: str, dns: DnsResolver, **overrides: object) -> DomainReport:
    arguments: dict[str, object] = {
        "spf_includes": [PROVIDER],
        "selectors": [DkimSelector("pm20260101", KEY.p), DkimSelector("pm20260701", NEXT.p, required=False)],
        "minimum_policy": "quarantine",
        "report_addresses": [f"dmarc@{domain}"],
        **overrides,
    }
    return await check_domain(domain, resolver=dns, **arguments)  # type: ignore[arg-type]


async def test_ready_domain(published: NsdServer) -> None:
    report = await check("ready.pmdomain", resolver(published.nameserver))
    assert (report.spf.reason, report.dkim.reason, report.dmarc.reason) == (
        SpfReason.READY,
        DkimReason.PUBLISHED,
        DmarcReason.READY,
    )
    assert report.status == "True"
    assert report.ready
    # The next key of a rotation is not served yet: reported, but DKIMReady stays True.
    assert "Next key pm20260701: not served yet" in report.dkim.message
    published_flags = {(r.name, r.type): r.published for r in report.records}
    assert published_flags == {
        ("ready.pmdomain", "TXT"): True,
        ("pm20260101._domainkey.ready.pmdomain", "TXT"): True,
        ("pm20260701._domainkey.ready.pmdomain", "TXT"): False,
        ("_dmarc.ready.pmdomain", "TXT"): True,
    }
    assert report.unpublished[0].name == "pm20260701._domainkey.ready.pmdomain"


async def test_fresh_domain_lists_every_record_and_publishing_them_makes_it_ready(published: NsdServer) -> None:
    wanted = {"report_addresses": ["agg@vendor.pmdomain"]}
    report = await check("fresh.pmdomain", resolver(published.nameserver), **wanted)
    assert (report.spf.reason, report.dkim.reason, report.dmarc.reason) == (
        SpfReason.RECORD_MISSING,
        DkimReason.RECORD_MISSING,
        DmarcReason.RECORD_MISSING,
    )
    assert report.status == "False"
    records = {r.name: r for r in report.records}
    assert list(records) == [
        "fresh.pmdomain",
        "pm20260101._domainkey.fresh.pmdomain",
        "pm20260701._domainkey.fresh.pmdomain",
        "_dmarc.fresh.pmdomain",
        "fresh.pmdomain._report._dmarc.vendor.pmdomain",
    ]
    assert records["fresh.pmdomain"].value == f"v=spf1 include:{PROVIDER} ~all"
    dkim = records["pm20260101._domainkey.fresh.pmdomain"]
    assert dkim.value == txt_value(KEY)
    assert len(dkim.strings) == 2
    assert records["_dmarc.fresh.pmdomain"].value == "v=DMARC1; p=quarantine; rua=mailto:agg@vendor.pmdomain"
    assert records["fresh.pmdomain._report._dmarc.vendor.pmdomain"].value == "v=DMARC1"
    assert all(r.published is False for r in report.records)
    assert all(r.as_status()["published"] is False for r in report.records)

    # Publish exactly what the report says, as a person would paste it, and check again.
    own = [r for r in report.records if not r.name.endswith(".vendor.pmdomain")]
    theirs = [r for r in report.records if r.name.endswith(".vendor.pmdomain")]
    published.zones_bulk(
        {
            "fresh.pmdomain": "\n".join(f"{r.name}. {r.type} {r.zone_value}" for r in own),
            "vendor.pmdomain": "\n".join(f"{r.name}. {r.type} {r.zone_value}" for r in theirs),
        }
    )
    again = await check("fresh.pmdomain", resolver(published.nameserver), **wanted)
    assert again.status == "True", again.as_dict()
    assert all(r.published is True for r in again.records)


async def test_silent_server_is_unknown_and_the_same_resolver_recovers(published: NsdServer) -> None:
    with muting_forwarder(published) as forwarder:
        dns = resolver(forwarder.nameserver, timeout=0.2)
        silent = await check("ready.pmdomain", dns)
        assert (silent.spf.status, silent.dkim.status, silent.dmarc.status) == ("Unknown", "Unknown", "Unknown")
        assert (silent.spf.reason, silent.dkim.reason, silent.dmarc.reason) == (
            SpfReason.DNS_TIMEOUT,
            DkimReason.DNS_TIMEOUT,
            DmarcReason.DNS_TIMEOUT,
        )
        assert silent.status == "Unknown"
        assert {r.published for r in silent.records} == {None}
        assert forwarder.dropped > 0

        forwarder.muted = False
        recovered = await check("ready.pmdomain", dns)
        assert recovered.status == "True"


# --------------------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------------------


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="postmaster")
    cli_check.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_table_and_exit_status(published: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["check", "domain", "--include", PROVIDER, "--selector", "pm20260101", "--min-policy", "quarantine"]
    code = run(*base, "ready.pmdomain", "--nameserver", published.nameserver)
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1].split() == [
        "ready.pmdomain",
        "True",
        "Ready",
        "True",
        "Published",
        "True",
        "Ready",
        "yes",
    ]
    assert "records:" not in out  # no details for ready domains without --verbose

    code = run(*base, "ready.pmdomain", "orphan.pmdomain", "--nameserver", published.nameserver)
    out = capsys.readouterr().out
    assert code == 1
    assert "orphan.pmdomain  False RecordMissing" in out.replace("   ", "  ")
    assert f'[MISSING] orphan.pmdomain TXT "v=spf1 include:{PROVIDER} ~all"' in out
    assert '[MISSING] _dmarc.orphan.pmdomain TXT "v=DMARC1; p=quarantine"' in out


def test_cli_json(published: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "check", "domain", "ready.pmdomain", "--include", PROVIDER, "--selector", "pm20260101",
        "--nameserver", published.nameserver, "--json",
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    (domain,) = data["domains"]
    assert domain["status"] == "True"
    assert domain["dkim"]["selectors"][0]["keyBits"] == 2048
    assert domain["dmarc"]["walked"] == ["_dmarc.ready.pmdomain", "_dmarc.pmdomain"]
    # Without the key the CLI reports what DNS serves: a plain TXT key stays a TXT record.
    assert [(r["type"], r["published"]) for r in domain["records"]] == [("TXT", True), ("TXT", True), ("TXT", True)]
    assert domain["records"][1]["value"] == txt_value(KEY)


def test_cli_silent_server_exits_75(silent_server: SilentServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "check", "domain", "ready.pmdomain", "--selector", "pm20260101",
        "--nameserver", silent_server.nameserver, "--timeout", "0.2",
    )  # fmt: skip
    assert code == cli_check.EX_TEMPFAIL
    assert "unknown" in capsys.readouterr().out


def test_cli_provider_preset_fills_include_and_cname_selectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key("rsa", 2048)
    zones = {
        # A private stand-in for SendGrid's zone, served only on this loopback nsd.
        "sendgrid.net": "\n".join(
            [
                '@ TXT "v=spf1 ip4:198.51.100.0/24 -all"',
                f"s1.domainkey.u77.wl TXT {format_txt_strings(txt_value(key))}",
                f"s2.domainkey.u77.wl TXT {format_txt_strings(txt_value(key))}",
            ]
        ),
        "pmcli": "",
        "shop.pmcli": "\n".join(
            [
                '@ TXT "v=spf1 include:sendgrid.net ~all"',
                "s1._domainkey CNAME s1.domainkey.u77.wl.sendgrid.net.",
                "s2._domainkey CNAME s2.domainkey.u77.wl.sendgrid.net.",
                '_dmarc TXT "v=DMARC1; p=none"',
            ]
        ),
        "half.pmcli": '@ TXT "v=spf1 include:sendgrid.net ~all"\n_dmarc TXT "v=DMARC1; p=none"',
    }
    with running_nsd(tmp_path, zones=zones) as server:
        ready = run("check", "domain", "shop.pmcli", "--provider", "sendgrid", "--nameserver", server.nameserver)
        out = capsys.readouterr().out
        assert ready == 0, out
        code = run("check", "domain", "half.pmcli", "--provider", "sendgrid", "--nameserver", server.nameserver)
        out = capsys.readouterr().out
    assert code == 1
    assert "[MISSING] s1._domainkey.half.pmcli CNAME s1.domainkey.u<account-id>.wl<id>.sendgrid.net." in out
    assert "[MISSING] s2._domainkey.half.pmcli CNAME" in out
    assert "[published] half.pmcli TXT" in out


# --------------------------------------------------------------------------------------------------
# A DNS server that can be silenced
# --------------------------------------------------------------------------------------------------


class MutingForwarder:
    """A UDP DNS forwarder on loopback: drops every question while `muted`, relays to nsd otherwise."""

    def __init__(self, upstream: NsdServer) -> None:
        self.upstream = (upstream.address, upstream.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.muted = True
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="muting-forwarder", daemon=True)
        self._thread.start()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if self.muted:
                self.dropped += 1
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as relay:
                relay.settimeout(2)
                relay.sendto(query, self.upstream)
                try:
                    answer, _ = relay.recvfrom(65535)
                except TimeoutError:
                    continue
            self.sock.sendto(answer, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@contextlib.contextmanager
def muting_forwarder(upstream: NsdServer) -> Iterator[MutingForwarder]:
    forwarder = MutingForwarder(upstream)
    try:
        yield forwarder
    finally:
        forwarder.close()


class TruncatingServer:
    """Answers every UDP question with TC=1 (as nsd's rate limiting does) and hangs up every TCP connection."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.port = int(self.tcp.getsockname()[1])
        self.tcp.listen(16)
        self.tcp.settimeout(0.05)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.05)
        self.hangups = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve_udp(self) -> None:
        import dns.flags
        import dns.message

        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            response = dns.message.make_response(dns.message.from_wire(data))
            response.flags |= dns.flags.TC
            self.udp.sendto(response.to_wire(), peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hangups += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.udp.close()
        self.tcp.close()


async def test_truncation_then_a_closed_tcp_connection_is_unknown_not_a_crash() -> None:
    server = TruncatingServer()
    try:
        report = await check("ready.pmdomain", resolver(server.nameserver, timeout=0.5))
    finally:
        server.close()
    assert server.hangups > 0
    assert (report.spf.reason, report.dkim.reason, report.dmarc.reason) == (
        SpfReason.DNS_SERVER_FAILURE,
        DkimReason.DNS_SERVER_FAILURE,
        DmarcReason.DNS_SERVER_FAILURE,
    )
    assert report.status == "Unknown"
