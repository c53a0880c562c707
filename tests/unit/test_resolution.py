"""Preset resolution: explicit fields override the preset; unusable specs name the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from postmaster.api.mailprovider import AuthMethod, MailProviderSpec, TLSMode
from postmaster.providers.catalog import Preset
from postmaster.resolution import SpecError, resolve_credentials, resolve_endpoint

PASSWORD = "s3cr3t-app-password"


def spec(**fields: Any) -> MailProviderSpec:
    base: dict[str, Any] = {
        "from": {"address": "alerts@example.com"},
        "auth": {"credentialsSecretRef": {"name": "creds"}},
    }
    base.update(fields)
    return MailProviderSpec.model_validate(base)


def test_gmail_preset_fills_everything() -> None:
    ep = resolve_endpoint(spec(preset="gmail"))
    assert (ep.host, ep.port, ep.tls, ep.auth_method) == ("smtp.gmail.com", 587, TLSMode.STARTTLS, AuthMethod.PLAIN)
    assert ep.daily_limit == 500


def test_explicit_fields_override_the_preset() -> None:
    ep = resolve_endpoint(spec(preset="gmail", port=465, tls="implicit", dailyLimit=100))
    assert (ep.port, ep.tls, ep.daily_limit) == (465, TLSMode.IMPLICIT, 100)


def test_changing_only_the_tls_mode_picks_that_modes_port() -> None:
    assert resolve_endpoint(spec(preset="gmail", tls="implicit")).port == 465


def test_explicit_port_implies_the_tls_mode() -> None:
    assert resolve_endpoint(spec(host="mail.example.com", port=465)).tls is TLSMode.IMPLICIT
    assert resolve_endpoint(spec(host="mail.example.com", port=2525)).tls is TLSMode.STARTTLS


def test_office365_rate_limit_is_30_per_minute() -> None:
    ep = resolve_endpoint(spec(preset="office365"))
    assert ep.rate_limit is not None
    assert ep.rate_limit.messages == 30
    assert ep.rate_limit.seconds_between_messages == 2.0


def test_ses_needs_a_region() -> None:
    with pytest.raises(SpecError) as info:
        resolve_endpoint(spec(preset="ses"))
    assert info.value.field_path == "spec.region"
    assert info.value.reason == "InvalidSpec"
    assert resolve_endpoint(spec(preset="ses", region="eu-west-1")).host == "email-smtp.eu-west-1.amazonaws.com"


def test_custom_needs_a_host() -> None:
    with pytest.raises(SpecError, match=r"spec\.host"):
        resolve_endpoint(spec())


def test_password_methods_need_a_secret() -> None:
    with pytest.raises(SpecError) as info:
        resolve_endpoint(MailProviderSpec.model_validate({"preset": "sendgrid", "from": {"address": "a@example.com"}}))
    assert info.value.field_path == "spec.auth.credentialsSecretRef"
    assert "apikey" in info.value.message


def test_xoauth2_needs_a_token_source() -> None:
    with pytest.raises(SpecError, match="oauth2"):
        resolve_endpoint(spec(preset="office365", auth={"method": "xoauth2"}))


def test_sendgrid_username_is_apikey_unless_the_secret_says_otherwise() -> None:
    s = spec(preset="sendgrid")
    ep = resolve_endpoint(s)
    creds = resolve_credentials(s, ep, {"password": PASSWORD})
    assert creds is not None
    assert (creds.username, creds.password) == ("apikey", PASSWORD)
    creds = resolve_credentials(s, ep, {"password": PASSWORD, "username": "other"})
    assert creds is not None
    assert creds.username == "other"


def test_gmail_username_defaults_to_the_sender() -> None:
    s = spec(preset="gmail")
    creds = resolve_credentials(s, resolve_endpoint(s), {"password": PASSWORD})
    assert creds is not None
    assert creds.username == "alerts@example.com"


def test_missing_secret_and_missing_key() -> None:
    s = spec(preset="mailgun")
    ep = resolve_endpoint(s)
    with pytest.raises(SpecError) as info:
        resolve_credentials(s, ep, None)
    assert info.value.reason == "SecretNotFound"
    with pytest.raises(SpecError) as info:
        resolve_credentials(s, ep, {"pass": PASSWORD})
    assert info.value.reason == "SecretKeyNotFound"
    assert "keys present: pass" in info.value.message
    with pytest.raises(SpecError) as info:
        resolve_credentials(s, ep, {"password": PASSWORD})
    assert info.value.reason == "SecretKeyNotFound"
    assert info.value.field_path.endswith("usernameKey")


def test_trailing_newline_in_a_password_is_refused_without_showing_it() -> None:
    s = spec(preset="gmail")
    with pytest.raises(SpecError) as info:
        resolve_credentials(s, resolve_endpoint(s), {"password": PASSWORD + "\n"})
    assert info.value.reason == "InvalidCredentials"
    assert PASSWORD not in str(info.value)
    assert "echo" in info.value.message


def test_credentials_repr_hides_the_password() -> None:
    s = spec(preset="gmail")
    creds = resolve_credentials(s, resolve_endpoint(s), {"password": PASSWORD})
    assert PASSWORD not in repr(creds)


def test_auth_none_needs_no_secret() -> None:
    s = MailProviderSpec.model_validate(
        {"host": "relay.internal", "port": 25, "auth": {"method": "none"}, "from": {"address": "a@example.com"}}
    )
    ep = resolve_endpoint(s)
    assert ep.tls is TLSMode.NONE
    assert resolve_credentials(s, ep, None) is None


@pytest.mark.parametrize("preset", [p.value for p in Preset if p is not Preset.CUSTOM])
def test_every_preset_resolves(preset: str) -> None:
    ep = resolve_endpoint(spec(preset=preset, region="us-east-1"))
    assert ep.host
    assert 1 <= ep.port <= 65535


def test_trailing_white_space_in_a_password_is_refused() -> None:
    s = spec(preset="gmail")
    with pytest.raises(SpecError) as info:
        resolve_credentials(s, resolve_endpoint(s), {"password": PASSWORD + " "})
    assert info.value.reason == "InvalidCredentials"
    assert PASSWORD not in str(info.value)
