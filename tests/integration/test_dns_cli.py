"""`postmaster check spf` against zones served by nsd."""

from __future__ import annotations

import argparse
import json

import pytest

from postmaster.cli import check as cli_check
from tests.fixtures.dns import NsdServer


@pytest.fixture(scope="module")
def cli_zone(nsd: NsdServer) -> NsdServer:
    nsd.zone("cli.spf.test", '@ TXT "v=spf1 ip4:192.0.2.0/24 -all exp=why.%{d}"\nwhy TXT "%{i} is not ours"')
    return nsd


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="postmaster")
    cli_check.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_check_spf_prints_the_result(cli_zone: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = run("check", "spf", "192.0.2.7", "app@cli.spf.test", "--nameserver", cli_zone.nameserver)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("pass: 192.0.2.7 sending as app@cli.spf.test")
    assert "matched: ip4:192.0.2.0/24" in out


def test_check_spf_json_carries_explanation_and_lookups(
    cli_zone: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run("check", "spf", "198.51.100.1", "app@cli.spf.test", "--nameserver", cli_zone.nameserver, "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["result"] == "fail"
    assert data["explanation"] == "198.51.100.1 is not ours"
    assert data["dns_lookups"] == 0
    assert data["mechanism"] == "-all"


def test_check_spf_with_empty_sender_checks_the_helo_name(
    cli_zone: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run("check", "spf", "192.0.2.7", "<>", "--helo", "cli.spf.test", "--nameserver", cli_zone.nameserver)
    assert code == 0
    assert "postmaster@cli.spf.test" in capsys.readouterr().out


def test_check_spf_temperror_exits_75(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.dns import SilentServer

    silent = SilentServer()
    try:
        code = run("check", "spf", "192.0.2.7", "a@cli.spf.test", "--nameserver", silent.nameserver, "--timeout", "0.2")
    finally:
        silent.stop()
    assert code == cli_check.EX_TEMPFAIL
    assert capsys.readouterr().out.startswith("temperror")


def test_check_spf_rejects_a_bad_address() -> None:
    with pytest.raises(SystemExit):
        run("check", "spf", "not-an-ip", "a@cli.spf.test")
