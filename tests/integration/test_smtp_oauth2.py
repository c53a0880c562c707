"""XOAUTH2: tokens given as is and tokens from a real client-credentials endpoint (aiohttp on loopback)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from postmaster.checks.oauth2 import (
    MICROSOFT_365_SMTP_SCOPE,
    ClientCredentialsFlow,
    StaticToken,
    TokenRequestError,
    microsoft_token_url,
)
from postmaster.checks.smtp import (
    AuthMethod,
    ProbeConfig,
    Reason,
    Secret,
    StageName,
    Timeouts,
    TlsMode,
    classify,
    probe,
)
from tests.fixtures.smtp import CLIENT_ID, CLIENT_SECRET, HOST, USER, SmtpServer, TokenEndpoint

FAST = Timeouts(connect=2, greeting=2, tls=2, command=2, total=15)


def xoauth2_config(server: SmtpServer, token: Any, **overrides: Any) -> ProbeConfig:
    values: dict[str, Any] = {
        "host": HOST,
        "port": server.port,
        "tls": TlsMode.STARTTLS,
        "ca_bundle_pem": server.ca_pem,
        "auth": AuthMethod.XOAUTH2,
        "username": USER,
        "token": token,
        "mail_from": USER,
        "timeouts": FAST,
    }
    values.update(overrides)
    return ProbeConfig(**values)


def flow(endpoint: TokenEndpoint, **overrides: Any) -> ClientCredentialsFlow:
    values: dict[str, Any] = {
        "token_url": endpoint.url,
        "client_id": CLIENT_ID,
        "client_secret": Secret(CLIENT_SECRET),
        "scope": MICROSOFT_365_SMTP_SCOPE,
        "timeout": 2.0,
    }
    values.update(overrides)
    return ClientCredentialsFlow(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_static_token_accepted(submission_server: SmtpServer, oauth2_tokens: set[str]) -> None:
    token = "ya29." + secrets.token_urlsafe(20)
    oauth2_tokens.add(token)

    result = await probe(xoauth2_config(submission_server, StaticToken(Secret(token))))

    assert result.ok, result.failure
    assert (result.auth_mechanism, result.token_source) == ("XOAUTH2", "static")
    assert "token" not in [s.name.value for s in result.stages]  # nothing fetched
    assert classify(result).reason is Reason.SUCCEEDED


async def test_a_secret_passed_as_token_becomes_a_static_token(
    smtps_server: SmtpServer, oauth2_tokens: set[str]
) -> None:
    token = "ya29." + secrets.token_urlsafe(20)
    oauth2_tokens.add(token)

    result = await probe(xoauth2_config(smtps_server, Secret(token), tls=TlsMode.IMPLICIT))

    assert result.ok, result.failure


async def test_expired_static_token(submission_server: SmtpServer) -> None:
    result = await probe(xoauth2_config(submission_server, StaticToken(Secret("ya29.expired-long-ago"))))

    assert result.failure is not None
    assert result.failure.stage is StageName.AUTH
    auth = result.stage(StageName.AUTH)
    assert auth is not None
    assert auth.detail["challenge"] == {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.TOKEN_EXPIRED, "False", True)
    assert "fresh token" in verdict.message
    assert "client-credentials" in verdict.message


async def test_client_credentials_token_fetched_once_and_reused(
    submission_server: SmtpServer, token_endpoint: TokenEndpoint
) -> None:
    source = flow(token_endpoint)

    first = await probe(xoauth2_config(submission_server, source))
    second = await probe(xoauth2_config(submission_server, source))

    assert first.ok, first.failure
    assert second.ok, second.failure
    assert token_endpoint.requests == 1
    assert token_endpoint.seen_scopes == [MICROSOFT_365_SMTP_SCOPE]
    assert first.token_source == "client-credentials"
    assert [s.name.value for s in first.stages].index("token") < [s.name.value for s in first.stages].index("auth")


async def test_token_refreshed_shortly_before_it_expires(token_endpoint: TokenEndpoint) -> None:
    token_endpoint.expires_in = 600
    clock = Clock()
    source = flow(token_endpoint, refresh_margin=60, clock=clock)

    first = await source.get_token()
    clock.now += 500  # 100 s left: still good
    assert await source.get_token() == first
    clock.now += 45  # 55 s left: inside the margin
    second = await source.get_token()

    assert second != first
    assert token_endpoint.requests == 2
    assert source.expires_in == pytest.approx(600)


async def test_concurrent_callers_share_one_request(token_endpoint: TokenEndpoint) -> None:
    source = flow(token_endpoint)

    tokens = await asyncio.gather(*(source.get_token() for _ in range(5)))

    assert len(set(tokens)) == 1
    assert token_endpoint.requests == 1


async def test_revoked_token_is_dropped_and_replaced(
    submission_server: SmtpServer, token_endpoint: TokenEndpoint, oauth2_tokens: set[str]
) -> None:
    source = flow(token_endpoint)
    assert (await probe(xoauth2_config(submission_server, source))).ok
    oauth2_tokens.difference_update(token_endpoint.issued)  # the server no longer accepts it

    refused = await probe(xoauth2_config(submission_server, source))
    again = await probe(xoauth2_config(submission_server, source))

    verdict = classify(refused)
    assert (verdict.reason, verdict.needs_person) == (Reason.TOKEN_EXPIRED, False)
    assert "SMTP.SendAsApp" in verdict.message
    assert again.ok, again.failure
    assert token_endpoint.requests == 2


async def test_wrong_client_secret(submission_server: SmtpServer, token_endpoint: TokenEndpoint) -> None:
    source = flow(token_endpoint, client_secret=Secret("not-the-client-secret"))

    result = await probe(xoauth2_config(submission_server, source))

    assert result.failure is not None
    assert result.failure.stage is StageName.TOKEN
    token = result.stage(StageName.TOKEN)
    assert token is not None
    assert token.detail["error"] == "invalid_client"
    assert token.detail["status"] == 401
    assert "auth" not in [s.name.value for s in result.stages]
    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.needs_person) == (Reason.TOKEN_REQUEST_FAILED, "False", True)
    assert "invalid_client" in verdict.message
    assert "The client secret is not valid for this application." in verdict.message
    assert "not-the-client-secret" not in verdict.message


async def test_identity_provider_unavailable_is_transient(
    submission_server: SmtpServer, token_endpoint: TokenEndpoint
) -> None:
    token_endpoint.fail_with = (503, {"error": "temporarily_unavailable", "error_description": "try later"})

    result = await probe(xoauth2_config(submission_server, flow(token_endpoint)))

    verdict = classify(result)
    assert (verdict.reason, verdict.status, verdict.transient) == (Reason.TOKEN_REQUEST_FAILED, "Unknown", True)


async def test_token_endpoint_not_listening(closed_port: int) -> None:
    source = ClientCredentialsFlow(
        token_url=f"http://{HOST}:{closed_port}/token",
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        timeout=2.0,
    )

    with pytest.raises(TokenRequestError) as caught:
        await source.get_token()

    assert caught.value.transient
    assert caught.value.error == "connection-failed"
    assert CLIENT_SECRET not in str(caught.value)


async def test_answer_without_json(token_endpoint: TokenEndpoint) -> None:
    token_endpoint.fail_with = (502, {})
    source = flow(token_endpoint)

    with pytest.raises(TokenRequestError) as caught:
        await source.get_token()

    assert caught.value.status == 502
    assert caught.value.transient


def test_token_url_must_be_https_except_on_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        ClientCredentialsFlow(token_url="http://login.example.com/token", client_id="x", client_secret=Secret("y"))
    with pytest.raises(ValueError, match="credentials"):
        ClientCredentialsFlow(token_url="https://u:p@login.example.com/t", client_id="x", client_secret=Secret("y"))
    ClientCredentialsFlow(token_url="https://login.example.com/token", client_id="x", client_secret=Secret("y"))
    ClientCredentialsFlow(token_url="http://[::1]:8080/token", client_id="x", client_secret=Secret("y"))


def test_microsoft_token_url() -> None:
    assert microsoft_token_url("contoso.onmicrosoft.com") == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    with pytest.raises(ValueError, match="tenant"):
        microsoft_token_url("contoso/../x")


def test_flow_repr_has_no_secret() -> None:
    source = ClientCredentialsFlow(
        token_url="https://login.example.com/token", client_id="app", client_secret=Secret(CLIENT_SECRET)
    )
    assert CLIENT_SECRET not in repr(source)
    assert CLIENT_SECRET not in str(vars(source))
