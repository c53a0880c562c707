"""The probe's plain parts: replies, extensions, certificate facts, host matching, configuration, secrets."""

from __future__ import annotations

import copy
import datetime
import json
import pickle
import ssl

import pytest
import trustme

from postmaster.checks.oauth2 import StaticToken
from postmaster.checks.secret import Secret
from postmaster.checks.smtp import AuthMethod, Extensions, ProbeConfig, Reply, Timeouts, TlsMode
from postmaster.checks.smtp.result import to_jsonable
from postmaster.checks.smtp.session import build_test_message, queue_id_from
from postmaster.checks.smtp.tls import certificate_facts, hostname_matches, verify_error_meaning


def test_reply_with_enhanced_code_over_several_lines() -> None:
    reply = Reply.parse(
        535,
        "5.7.8 Username and Password not accepted. For more information, go to\n"
        "5.7.8  https://support.google.com/mail/?p=BadCredentials a1-20020a",
    )
    assert reply.enhanced == "5.7.8"
    assert reply.text == (
        "Username and Password not accepted. For more information, go to "
        "https://support.google.com/mail/?p=BadCredentials a1-20020a"
    )
    assert str(reply).startswith("535 5.7.8 Username and Password")
    assert reply.permanent
    assert not reply.transient


def test_reply_without_enhanced_code() -> None:
    reply = Reply.parse(220, "smtp.example.com ESMTP Postfix")
    assert (reply.enhanced, reply.text, str(reply)) == (None, "smtp.example.com ESMTP Postfix", "220 " + reply.text)
    assert Reply.parse(421, "4.4.2 Message submission rate ...").transient


def test_extensions_from_an_ehlo_reply() -> None:
    ext = Extensions.from_keywords(
        {"size": "35882577", "8bitmime": "", "auth": "LOGIN PLAIN XOAUTH2", "starttls": "", "smtputf8": ""},
        ["login", "plain", "xoauth2"],
    )
    assert ext.starttls
    assert ext.smtputf8
    assert ext.eightbitmime
    assert not ext.pipelining
    assert not ext.chunking
    assert ext.size == 35882577
    assert ext.auth_mechanisms == ["LOGIN", "PLAIN", "XOAUTH2"]
    assert Extensions.from_keywords({"size": ""}, []).size == 0


@pytest.mark.parametrize(
    ("host", "sans", "matches"),
    [
        ("smtp.example.com", ["DNS:smtp.example.com"], True),
        ("SMTP.Example.COM.", ["DNS:smtp.example.com"], True),
        ("smtp.example.com", ["DNS:*.example.com"], True),
        ("a.smtp.example.com", ["DNS:*.example.com"], False),
        ("example.com", ["DNS:*.example.com"], False),
        ("smtp.example.com", ["DNS:mail.example.com", "IP:192.0.2.1"], False),
        ("192.0.2.1", ["DNS:192.0.2.1"], False),
        ("192.0.2.1", ["IP:192.0.2.1"], True),
        ("[2001:db8::1]", ["IP:2001:db8::1"], True),
        ("bücher.example", ["DNS:xn--bcher-kva.example"], True),
    ],
)
def test_hostname_matching(host: str, sans: list[str], matches: bool) -> None:
    assert hostname_matches(host, sans) is matches


def test_certificate_facts() -> None:
    ca = trustme.CA(organization_name="Facts CA")
    now = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)
    leaf = ca.issue_cert(
        "smtp.example.com",
        "192.0.2.7",
        common_name="smtp.example.com",
        not_before=now - datetime.timedelta(days=10),
        not_after=now + datetime.timedelta(days=20, hours=1),
    )
    der = leaf.cert_chain_pems[0].bytes()
    facts = certificate_facts(ssl.PEM_cert_to_DER_cert(der.decode()), now=now)
    assert facts.common_name == "smtp.example.com"
    assert "CN=smtp.example.com" in facts.subject
    assert facts.sans == ["DNS:smtp.example.com", "IP:192.0.2.7"]
    assert "Facts CA" in facts.issuer
    assert not facts.self_signed
    assert (facts.days_left, facts.expired, facts.not_yet_valid) == (20, False, False)


def test_openssl_verify_codes() -> None:
    assert verify_error_meaning(62) == (False, None)  # hostname mismatch
    assert verify_error_meaning(10) == (True, False)  # expired
    assert verify_error_meaning(20) == (None, False)  # unknown issuer
    assert verify_error_meaning(None) == (None, None)


@pytest.mark.parametrize(
    ("text", "queue_id"),
    [
        ("2.0.0 Ok: queued as 4Yb2pQ0XyZz3", "4Yb2pQ0XyZz3"),
        (
            "2.0.0 OK <AM0PR01MB0000.eurprd01.prod.outlook.com> [Hostname=AM0PR01MB0000]",
            "<AM0PR01MB0000.eurprd01.prod.outlook.com>",
        ),
        ("2.0.0 OK  1717171717 a1-20020a170906a00100b00a0000000000si0000000ejb.100 - gsmtp", "1717171717"),
        (
            "Ok 0102018f00000000-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000",
            "0102018f00000000-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000",
        ),
        ("OK", None),
        ("2.0.0 Message accepted for delivery", None),
    ],
)
def test_queue_ids(text: str, queue_id: str | None) -> None:
    assert queue_id_from(Reply.parse(250, text)) == queue_id


def test_secret() -> None:
    secret = Secret("hunter2-secret")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + f"{secret:>30}"
    assert secret == Secret("hunter2-secret")
    assert secret != Secret("other")
    assert hash(secret) == hash(Secret("hunter2-secret"))
    assert copy.deepcopy(secret) is secret
    assert bool(secret)
    assert not Secret("")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        json.dumps(to_jsonable({"password": secret}))


def test_config_validation() -> None:
    ok = ProbeConfig(host="smtp.example.com", auth=AuthMethod.PLAIN, username="u", password=Secret("p"))
    assert ok.tls is TlsMode.STARTTLS
    assert ok.port == 587
    assert isinstance(ProbeConfig(host="h", auth="xoauth2", username="u", token=Secret("t")).token, StaticToken)  # type: ignore[arg-type]
    bad: list[dict[str, object]] = [
        {"host": ""},
        {"host": "smtp.example.com\r\nEHLO x"},
        {"host": "h", "port": 0},
        {"host": "h", "tls": "ssl"},
        {"host": "h", "auth": AuthMethod.PLAIN, "password": Secret("p")},
        {"host": "h", "auth": AuthMethod.PLAIN, "username": "u"},
        {"host": "h", "auth": AuthMethod.XOAUTH2, "username": "u", "password": Secret("p")},
        {"host": "h", "mail_from": "a@b>\r\nRCPT TO:<c@d"},
        {"host": "h", "rcpt_to": "not-an-address"},
        {"host": "h", "helo_name": "two words"},
        {"host": "h", "ca_bundle_pem": "not a certificate"},
    ]
    for fields in bad:
        with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
            ProbeConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ProbeConfig(host="h", auth=AuthMethod.PLAIN, username="u", password="plain text")  # type: ignore[arg-type]


def test_timeouts() -> None:
    uniform = Timeouts.uniform(2)
    assert (uniform.connect, uniform.greeting, uniform.tls, uniform.command, uniform.total) == (2, 2, 2, 2, 20)
    with pytest.raises(ValueError, match="command"):
        Timeouts(command=0)


def test_test_message() -> None:
    config = ProbeConfig(host="smtp.example.com", mail_from="app@example.com")
    raw, message_id = build_test_message(config, "ops@example.net", "Subject line")
    assert raw.endswith(b"\r\n")
    assert b"\r\nSubject: Subject line\r\n" in raw
    assert message_id.endswith("@example.com>")
    assert len(raw) < 2000
