"""`postmaster probe` as a person runs it: a real process against real servers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.fixtures.smtp import HOST, PASSWORD, USER, SmtpServer

EX_TEMPFAIL = 75


async def postmaster(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "postmaster",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def files(tmp_path: Path, server: SmtpServer, password: str = PASSWORD) -> tuple[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_text(server.ca_pem)
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    return str(ca), str(secret)


async def test_human_report_of_a_good_server(submission_server: SmtpServer, tmp_path: Path) -> None:
    ca, password = files(tmp_path, submission_server)

    code, out, err = await postmaster(
        "probe", HOST, "--port", str(submission_server.port), "--ca-file", ca, "--user", USER,
        "--password-file", password, "--mail-from", USER, "--rcpt-to", "bob@example.net", "--timeout", "3",
    )  # fmt: skip

    assert code == 0, out + err
    assert out.startswith(f"Probing {HOST} port {submission_server.port} (STARTTLS, AUTH PLAIN as {USER})")
    for stage in ("resolve", "connect", "banner", "ehlo", "starttls", "tls", "ehlo-after-tls", "auth", "mail", "rcpt"):
        assert f"\n  {stage} " in out
    assert "AUTH PLAIN <hidden> -> 235 2.7.0 Authentication successful" in out
    assert "extensions: SIZE 33554432, 8BITMIME, STARTTLS, HELP" in out
    assert "Certificate\n  subject" in out
    assert "hostname  matches 127.0.0.1" in out
    assert "Verdict: Succeeded." in out
    assert PASSWORD not in out + err


async def test_json_and_exit_status_of_a_refusal(submission_server: SmtpServer, tmp_path: Path) -> None:
    ca, password = files(tmp_path, submission_server, password="wrong-password")

    code, out, err = await postmaster(
        "probe", HOST, "--port", str(submission_server.port), "--ca-file", ca, "--user", USER,
        "--password-file", password, "--auth", "login", "--json", "--timeout", "3",
    )  # fmt: skip

    assert code == 1, out + err
    document = json.loads(out)
    assert document["verdict"]["reason"] == "AuthenticationFailed"
    assert document["verdict"]["status"] == "False"
    assert document["verdict"]["needsPerson"] is True
    assert document["probe"]["failure"]["stage"] == "auth"
    assert document["probe"]["tls"]["certificate"]["sans"]
    assert "wrong-password" not in out + err


async def test_transient_failure_exits_75(tarpit_server: SmtpServer) -> None:
    code, out, _ = await postmaster("probe", HOST, "--port", str(tarpit_server.port), "--timeout", "0.5")

    assert code == EX_TEMPFAIL
    assert "banner" in out
    assert "FAILED" in out
    assert "Verdict: ConnectionTimedOut at banner (transient, will be retried)" in out


async def test_send_a_test_message_with_the_password_on_stdin(smtps_server: SmtpServer, tmp_path: Path) -> None:
    ca, _ = files(tmp_path, smtps_server)
    handler = smtps_server.handler
    assert handler is not None
    before = len(handler.messages)

    code, out, err = await postmaster(
        "probe", HOST, "--port", str(smtps_server.port), "--tls", "implicit", "--ca-file", ca, "--user", USER,
        "--password-file", "-", "--mail-from", USER, "--send-test", "bob@example.net", "--timeout", "3",
        stdin=PASSWORD.encode(),
    )  # fmt: skip

    assert code == 0, out + err
    assert "Test message to bob@example.net accepted, queued as" in out
    assert len(handler.messages) == before + 1


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")

    code, _, err = await postmaster("probe", HOST, "--user", USER, "--password-file", str(empty))

    assert code == 2
    assert "empty" in err
