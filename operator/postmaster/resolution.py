"""From a MailProvider spec and its preset to the connection applications and the relay use.

Pure functions: the caller reads the Secret; nothing here touches the network or the API server.
A spec the API server accepted but that cannot be used raises `SpecError`, which names the field and
the fix and becomes `Stalled=True` with the error's reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta

from postmaster.api.common import parse_duration
from postmaster.api.mailprovider import AuthMethod, MailProviderSpec, TLSMode
from postmaster.providers.catalog import Preset, PresetEntry, preset_entry

# Characters that must never reach a credential written into a relay table or an SMTP command.
_FORBIDDEN_IN_CREDENTIAL = ("\r", "\n", "\x00")


class SpecError(Exception):
    """The spec (or what it references) cannot be used. Carries no secret value."""

    def __init__(self, field_path: str, message: str, reason: str = "InvalidSpec") -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message
        self.reason = reason

    def __eq__(self, other: object) -> bool:  # a value: two findings of the same fault are equal
        if not isinstance(other, SpecError):
            return NotImplemented
        return (self.field_path, self.message, self.reason) == (other.field_path, other.message, other.reason)

    def __hash__(self) -> int:
        return hash((self.field_path, self.message, self.reason))


@dataclass(frozen=True)
class RateSetting:
    messages: int
    per: timedelta

    @property
    def seconds_between_messages(self) -> float:
        return self.per.total_seconds() / self.messages


@dataclass(frozen=True)
class Endpoint:
    """The resolved, non-secret connection facts."""

    preset: Preset
    host: str
    port: int
    tls: TLSMode
    tls_verify: bool
    auth_method: AuthMethod
    from_address: str
    from_name: str | None
    rate_limit: RateSetting | None
    daily_limit: int | None
    entry: PresetEntry = field(repr=False)


@dataclass(frozen=True)
class Credentials:
    """A username and a secret (password, API key or token). The secret never shows in repr."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class OAuth2Credentials:
    """XOAUTH2: the username and where its bearer token comes from (a Secret, or client credentials)."""

    username: str
    token: str | None = field(default=None, repr=False)
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None


def referenced_secrets(spec: MailProviderSpec) -> list[str]:
    """Names of every Secret the spec reads, in a stable order."""
    auth = spec.auth
    names: list[str] = []
    if auth is not None:
        if auth.credentials_secret_ref is not None:
            names.append(auth.credentials_secret_ref.name)
        if auth.oauth2 is not None and auth.oauth2.token_secret_ref is not None:
            names.append(auth.oauth2.token_secret_ref.name)
        if auth.oauth2 is not None and auth.oauth2.client_credentials is not None:
            names.append(auth.oauth2.client_credentials.client_secret_ref.name)
    return list(dict.fromkeys(names))


_DEFAULT_PORT = {TLSMode.STARTTLS: 587, TLSMode.IMPLICIT: 465, TLSMode.NONE: 25}


def _default_tls_for_port(port: int) -> TLSMode:
    return {465: TLSMode.IMPLICIT, 25: TLSMode.NONE}.get(port, TLSMode.STARTTLS)


def resolve_endpoint(spec: MailProviderSpec) -> Endpoint:
    """Merge the spec over its preset. Raises SpecError for what the schema could not say."""
    entry = preset_entry(spec.preset)
    host = spec.host
    if host is None:
        if entry.host is None:
            raise SpecError("spec.host", f"preset {spec.preset.value} has no host: set spec.host to the SMTP server")
        if entry.needs_region:
            if spec.region is None:
                raise SpecError(
                    "spec.region",
                    f"preset {spec.preset.value} needs a region: set spec.region, e.g. eu-west-1 "
                    f"(the host becomes {entry.host.replace('{region}', 'eu-west-1')})",
                )
            host = entry.host.replace("{region}", spec.region)
        else:
            host = entry.host
    if ":" in host:  # the schema admits IPv6 literals loosely; check them properly here
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SpecError("spec.host", f"{host!r} is neither a host name nor an IP address") from None

    preset_tls = TLSMode(entry.tls) if entry.tls else None
    if spec.tls is not None:
        tls = spec.tls
    elif spec.port is not None and spec.port != entry.port:
        tls = _default_tls_for_port(spec.port)  # an explicit port decides, not the preset's mode for its own port
    else:
        tls = preset_tls or TLSMode.STARTTLS
    # The preset's port belongs to the preset's TLS mode; another mode gets that mode's standard port.
    port = spec.port or (entry.port if entry.port and preset_tls is tls else None) or _DEFAULT_PORT[tls]

    auth = spec.auth
    method = (auth.method if auth and auth.method else None) or AuthMethod(entry.auth_method)
    if method is AuthMethod.XOAUTH2 and (auth is None or auth.oauth2 is None):
        raise SpecError(
            "spec.auth.oauth2",
            "auth.method xoauth2 needs spec.auth.oauth2 with tokenSecretRef or clientCredentials",
        )
    if method not in (AuthMethod.NONE, AuthMethod.XOAUTH2) and (auth is None or auth.credentials_secret_ref is None):
        raise SpecError(
            "spec.auth.credentialsSecretRef",
            f"auth.method {method.value} needs a password: set spec.auth.credentialsSecretRef.name to a Secret "
            f"with key password ({entry.username_hint})"
            if entry.username_hint
            else f"auth.method {method.value} needs spec.auth.credentialsSecretRef",
        )
    if method is AuthMethod.NONE and tls is TLSMode.NONE and spec.preset is not Preset.CUSTOM:
        raise SpecError("spec.tls", f"preset {spec.preset.value} does not accept unencrypted, unauthenticated mail")

    rate = spec.rate_limit
    rate_limit = (
        RateSetting(rate.messages, parse_duration(rate.per))
        if rate
        else RateSetting(entry.rate_limit.messages, parse_duration(entry.rate_limit.per))
        if entry.rate_limit
        else None
    )
    for name, value in (("spec.probe.interval", spec.probe.interval), ("spec.probe.timeout", spec.probe.timeout)):
        if parse_duration(value).total_seconds() <= 0:
            raise SpecError(name, f"{value!r} must be longer than zero")
    if rate_limit is not None and rate_limit.per.total_seconds() <= 0:
        raise SpecError("spec.rateLimit.per", "the period must be longer than zero, e.g. 1m")

    return Endpoint(
        preset=spec.preset,
        host=host.rstrip(".").lower(),
        port=port,
        tls=tls,
        tls_verify=spec.tls_verify,
        auth_method=method,
        from_address=spec.sender.address,
        from_name=spec.sender.display_name,
        rate_limit=rate_limit,
        daily_limit=spec.daily_limit if spec.daily_limit is not None else entry.daily_limit,
        entry=entry,
    )


def _secret_value(secrets: dict[str, dict[str, str] | None], name: str, key: str, field_path: str) -> str:
    data = secrets.get(name)
    if data is None:
        raise SpecError(field_path, f"Secret {name!r} does not exist: create it with key {key!r}", "SecretNotFound")
    value = data.get(key)
    if not value:
        present = ", ".join(sorted(data)) or "none"
        raise SpecError(
            field_path,
            f"Secret {name!r} has no non-empty key {key!r} (keys present: {present})",
            "SecretKeyNotFound",
        )
    if any(ch in value for ch in _FORBIDDEN_IN_CREDENTIAL):
        raise SpecError(
            field_path,
            f"the value in Secret {name!r} key {key!r} contains a line break or NUL; remove the trailing newline",
            "InvalidCredentials",
        )
    return value


def resolve_oauth2(
    spec: MailProviderSpec, endpoint: Endpoint, secrets: dict[str, dict[str, str] | None]
) -> OAuth2Credentials | None:
    """For auth.method xoauth2: the username and the token source, read from the referenced Secrets."""
    auth = spec.auth
    if endpoint.auth_method is not AuthMethod.XOAUTH2 or auth is None or auth.oauth2 is None:
        return None
    username = auth.username
    if username is None and auth.credentials_secret_ref is not None:
        username = (secrets.get(auth.credentials_secret_ref.name) or {}).get(auth.credentials_secret_ref.username_key)
    username = username or endpoint.from_address
    oauth2 = auth.oauth2
    if oauth2.token_secret_ref is not None:
        ref = oauth2.token_secret_ref
        token = _secret_value(secrets, ref.name, ref.key, "spec.auth.oauth2.tokenSecretRef")
        return OAuth2Credentials(username=username, token=token)
    flow = oauth2.client_credentials
    if flow is None:  # the model guarantees exactly one of the two
        raise SpecError("spec.auth.oauth2", "set tokenSecretRef or clientCredentials")
    ref = flow.client_secret_ref
    client_secret = _secret_value(secrets, ref.name, ref.key, "spec.auth.oauth2.clientCredentials.clientSecretRef")
    return OAuth2Credentials(
        username=username,
        token_url=flow.token_url,
        client_id=flow.client_id,
        client_secret=client_secret,
        scope=flow.scope or endpoint.entry.oauth2_scope,
    )


def resolve_credentials(
    spec: MailProviderSpec, endpoint: Endpoint, secret_data: dict[str, str] | None
) -> Credentials | None:
    """Pick username and password from the decoded Secret data, following the preset's convention.

    `secret_data` is None when the Secret does not exist. Returns None when no credentials are needed.
    Error messages name keys, never values.
    """
    if endpoint.auth_method in (AuthMethod.NONE, AuthMethod.XOAUTH2):
        return None
    auth = spec.auth
    if auth is None or auth.credentials_secret_ref is None:  # resolve_endpoint refuses this earlier
        raise SpecError("spec.auth.credentialsSecretRef", "a Secret with the password is needed")
    ref = auth.credentials_secret_ref
    if secret_data is None:
        raise SpecError(
            "spec.auth.credentialsSecretRef.name",
            f"Secret {ref.name!r} does not exist: create it with key {ref.password_key!r}"
            + (f" ({endpoint.entry.username_hint})" if endpoint.entry.username_hint else ""),
            reason="SecretNotFound",
        )
    password = secret_data.get(ref.password_key)
    if password is None or password == "":
        present = ", ".join(sorted(secret_data)) or "none"
        raise SpecError(
            "spec.auth.credentialsSecretRef.passwordKey",
            f"Secret {ref.name!r} has no non-empty key {ref.password_key!r} (keys present: {present}); "
            "add the key or point passwordKey at the right one",
            reason="SecretKeyNotFound",
        )
    username = auth.username or secret_data.get(ref.username_key) or None
    if username is None:
        convention = endpoint.entry.username
        if convention == "fixed" and endpoint.entry.fixed_username:
            username = endpoint.entry.fixed_username
        elif convention == "sender":
            username = endpoint.from_address
        else:
            raise SpecError(
                "spec.auth.credentialsSecretRef.usernameKey",
                f"Secret {ref.name!r} has no key {ref.username_key!r} and preset {endpoint.preset.value} takes "
                f"the username from the Secret ({endpoint.entry.username_hint}); add the key or set spec.auth.username",
                reason="SecretKeyNotFound",
            )
    if password != password.rstrip():
        raise SpecError(
            f"spec.auth.credentialsSecretRef ({ref.password_key})",
            f"the password in Secret {ref.name!r} key {ref.password_key!r} ends in white space, which the relay's "
            "password table cannot keep; remove it (often a newline from `echo`: use `printf` or --from-literal)",
            reason="InvalidCredentials",
        )
    for what, value, key in (("username", username, ref.username_key), ("password", password, ref.password_key)):
        if any(ch in value for ch in _FORBIDDEN_IN_CREDENTIAL):
            raise SpecError(
                f"spec.auth.credentialsSecretRef ({key})",
                f"the {what} in Secret {ref.name!r} key {key!r} contains a line break or NUL; "
                "remove the trailing newline (use `kubectl create secret --from-literal` or `printf`, not `echo`)",
                reason="InvalidCredentials",
            )
    if ":" in username:
        raise SpecError(
            "spec.auth.credentialsSecretRef.usernameKey",
            f"the username in Secret {ref.name!r} contains ':', which SASL password tables cannot hold",
            reason="InvalidCredentials",
        )
    return Credentials(username=username, password=password)
