"""Credentials never leave their Secret: not into results, JSON, reports, log records or exception texts.

The probes here cover every path a credential takes (PLAIN, LOGIN, CRAM-MD5, XOAUTH2 with a static token and with
the client-credentials grant), successes and refusals, and a server that repeats the password in its reply.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from typing import Any

import pytest

from postmaster.checks.oauth2 import ClientCredentialsFlow, StaticToken, TokenRequestError
from postmaster.checks.smtp import (
    AuthMethod,
    ProbeConfig,
    ProbeResult,
    Secret,
    Timeouts,
    TlsMode,
    classify,
    probe,
    send_test_email,
)
from postmaster.checks.smtp.result import to_jsonable
from postmaster.cli.probe import format_report
from tests.fixtures.smtp import CLIENT_ID, CLIENT_SECRET, HOST, PASSWORD, USER, SmtpServer, TokenEndpoint

FAST = Timeouts(connect=2, greeting=2, tls=2, command=2, total=15)
STATIC_TOKEN = "ya29.A0-static-Token_value-that-must-stay-hidden"


def forbidden(*secrets: str) -> list[str]:
    """Each secret and the encodings it travels in."""
    forms: list[str] = []
    for secret in secrets:
        raw = secret.encode()
        forms += [
            secret,
            base64.b64encode(raw).decode(),
            base64.b64encode(b"\0" + USER.encode() + b"\0" + raw).decode(),
            base64.b64encode(b"user=" + USER.encode() + b"\x01auth=Bearer " + raw + b"\x01\x01").decode(),
            urllib.parse.quote_plus(secret),
        ]
    return forms


def base(server: SmtpServer, **overrides: Any) -> ProbeConfig:
    values: dict[str, Any] = {
        "host": HOST,
        "port": server.port,
        "tls": TlsMode.STARTTLS,
        "ca_bundle_pem": server.ca_pem,
        "username": USER,
        "mail_from": USER,
        "timeouts": FAST,
    }
    values.update(overrides)
    return ProbeConfig(**values)


def texts_of(result: ProbeResult, config: ProbeConfig) -> list[str]:
    verdict = classify(result)
    return [
        result.to_json(),
        repr(result),
        str(to_jsonable(result)),
        repr(verdict),
        format_report(result, verdict),
        repr(config),
        str(config),
    ]


def assert_clean(texts: list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a credential leaked into: {text[:200]}..."


# aiosmtpd's own logger belongs to the test servers, one of which repeats the password on purpose; every other
# logger (postmaster's, asyncio's, aiohttp's, aiosmtplib's if it ever logs) is checked.
TEST_SERVER_LOGGER = "mail.log"


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for record in caplog.records:
        if record.name == TEST_SERVER_LOGGER:
            continue
        out.append(record.getMessage())
        out.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            out.append(str(record.exc_info[1]))
        if record.exc_text:
            out.append(record.exc_text)
    return out


async def test_passwords_stay_hidden(
    caplog: pytest.LogCaptureFixture,
    submission_server: SmtpServer,
    echoing_server: SmtpServer,
    basic_auth_disabled_server: SmtpServer,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = forbidden(PASSWORD)
    configs = [
        base(submission_server, auth=method, password=Secret(PASSWORD))
        for method in (AuthMethod.PLAIN, AuthMethod.LOGIN, AuthMethod.CRAM_MD5)
    ]
    configs += [
        base(echoing_server, auth=AuthMethod.PLAIN, password=Secret(PASSWORD)),
        base(echoing_server, auth=AuthMethod.LOGIN, password=Secret(PASSWORD)),
        base(basic_auth_disabled_server, auth=AuthMethod.LOGIN, password=Secret(PASSWORD)),
        base(submission_server, tls=TlsMode.NONE, auth=AuthMethod.PLAIN, password=Secret(PASSWORD)),
    ]
    texts: list[str] = []
    for config in configs:
        result = await probe(config)
        texts += texts_of(result, config)
    sent = await send_test_email(configs[0], "bob@example.net")
    texts += [sent.to_json(), repr(sent)]

    echoed = await probe(configs[3])
    assert echoed.failure is not None
    assert echoed.failure.reply is not None
    assert echoed.failure.reply.text.endswith("with ***")  # the server did repeat it; we did not keep it
    assert_clean(texts, secrets)
    assert any(r.name.startswith("postmaster.") for r in caplog.records)  # the probe does log at DEBUG
    assert_clean(log_texts(caplog), secrets)


async def test_tokens_and_client_secrets_stay_hidden(
    caplog: pytest.LogCaptureFixture,
    submission_server: SmtpServer,
    token_endpoint: TokenEndpoint,
    oauth2_tokens: set[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    good = ClientCredentialsFlow(
        token_url=token_endpoint.url, client_id=CLIENT_ID, client_secret=Secret(CLIENT_SECRET), timeout=2
    )
    wrong = ClientCredentialsFlow(
        token_url=token_endpoint.url, client_id=CLIENT_ID, client_secret=Secret(CLIENT_SECRET + "-old"), timeout=2
    )
    sources = [good, wrong, StaticToken(Secret(STATIC_TOKEN))]
    for source in sources:
        config = base(submission_server, auth=AuthMethod.XOAUTH2, token=source)
        result = await probe(config)
        texts += texts_of(result, config)
    oauth2_tokens.add(STATIC_TOKEN)
    config = base(submission_server, auth=AuthMethod.XOAUTH2, token=StaticToken(Secret(STATIC_TOKEN)))
    accepted = await probe(config)
    assert accepted.ok
    texts += texts_of(accepted, config)
    with pytest.raises(TokenRequestError) as caught:
        await wrong.get_token()
    texts += [str(caught.value), repr(caught.value), repr(good), repr(wrong)]

    issued = sorted(token_endpoint.issued)
    assert issued  # a real token was fetched and used
    secrets = forbidden(CLIENT_SECRET, CLIENT_SECRET + "-old", STATIC_TOKEN, *issued)
    assert_clean(texts, secrets)
    assert_clean(log_texts(caplog), secrets)


def test_secret_type_hides_its_value() -> None:
    secret = Secret(PASSWORD)
    rendered = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, format(secret, ">40")]  # noqa: UP031
    assert_clean(rendered, [PASSWORD])
    assert secret.reveal() == PASSWORD
    config = ProbeConfig(host=HOST, auth=AuthMethod.PLAIN, username=USER, password=secret)
    assert_clean([repr(config), str(config)], [PASSWORD])
