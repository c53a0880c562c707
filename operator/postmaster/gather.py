"""Gather a MailProvider's inputs once, typed, and decide its outputs: shared by the operator's outputs reconcile,
its probe loop and `postmaster render`.

Gathering reads only through `References` (the operator reads the API server; `postmaster render` reads manifests
on disk), so what the three see cannot drift apart. Deciding is pure: `provider_outputs` turns gathered inputs into
the Secret `<name>-smtp` and the ConfigMap and Secret `<name>-relay`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from postmaster.api.mailprovider import AuthMethod, MailProviderSpec
from postmaster.render.access import NamedPolicy
from postmaster.render.ownership import Owner
from postmaster.render.relay import relay_config_map, relay_name, relay_secret
from postmaster.render.smtp_secret import smtp_secret, smtp_secret_name
from postmaster.resolution import (
    Credentials,
    Endpoint,
    OAuth2Credentials,
    SpecError,
    referenced_secrets,
    resolve_credentials,
    resolve_endpoint,
    resolve_oauth2,
)
from postmaster.statuses import ProviderFacts, spec_error_from_validation


class References(Protocol):
    """Where the Secrets and ConfigMaps a MailProvider names are read from (its own namespace)."""

    async def secret(self, name: str) -> dict[str, str] | None: ...

    async def configmap(self, name: str) -> dict[str, str] | None: ...


def parse_provider_spec(raw: Any) -> MailProviderSpec:
    """The typed spec, or SpecError naming the first invalid field as the manifest spells it."""
    try:
        return MailProviderSpec.model_validate(raw or {})
    except ValidationError as exc:
        raise spec_error_from_validation(exc) from None


@dataclass(frozen=True)
class ProviderInputs:
    """Everything a MailProvider's outputs and probe depend on. `error` set: the spec cannot be used now."""

    owner: Owner
    spec: MailProviderSpec | None
    endpoint: Endpoint | None = None
    credentials: Credentials | None = field(default=None, repr=False)
    oauth: OAuth2Credentials | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    error: SpecError | None = None
    policies: tuple[NamedPolicy, ...] = ()
    sending_domains: tuple[str, ...] = ()

    def facts(self, *, outputs_written: bool = False) -> ProviderFacts:
        return ProviderFacts(
            endpoint=self.endpoint,
            error=self.error,
            credentials_needed=self.endpoint is None or self.endpoint.auth_method is not AuthMethod.NONE,
            secret_name=smtp_secret_name(self.owner.name),
            relay_name=relay_name(self.owner.name),
            outputs_written=outputs_written,
        )


async def _ca_bundle(spec: MailProviderSpec, refs: References) -> str | None:
    ref = spec.ca_bundle_ref
    if ref is None:
        return None
    pem = ((await refs.configmap(ref.name)) or {}).get(ref.key)
    if not pem:
        raise SpecError(
            "spec.caBundleRef", f"ConfigMap {ref.name!r} key {ref.key!r} does not exist or is empty", "CABundleNotFound"
        )
    return pem


async def gather_provider(
    owner: Owner,
    spec: MailProviderSpec | SpecError,
    refs: References,
    *,
    policies: Sequence[NamedPolicy] = (),
    sending_domains: Sequence[str] = (),
) -> ProviderInputs:
    """Resolve the endpoint, read the credentials and the CA bundle. Never raises SpecError: it is returned."""
    members = (tuple(policies), tuple(sorted(set(sending_domains))))
    if isinstance(spec, SpecError):
        return ProviderInputs(owner, None, error=spec, policies=members[0], sending_domains=members[1])
    endpoint: Endpoint | None = None
    try:
        endpoint = resolve_endpoint(spec)
        secrets = {name: await refs.secret(name) for name in referenced_secrets(spec)}
        credentials: Credentials | None = None
        oauth: OAuth2Credentials | None = None
        if endpoint.auth_method is AuthMethod.XOAUTH2:
            oauth = resolve_oauth2(spec, endpoint, secrets)
        elif endpoint.auth_method is not AuthMethod.NONE:
            ref = spec.auth.credentials_secret_ref if spec.auth else None
            credentials = resolve_credentials(spec, endpoint, secrets.get(ref.name) if ref else None)
        ca_bundle = await _ca_bundle(spec, refs)
    except SpecError as exc:
        return ProviderInputs(owner, spec, endpoint, error=exc, policies=members[0], sending_domains=members[1])
    return ProviderInputs(
        owner, spec, endpoint, credentials, oauth, ca_bundle, policies=members[0], sending_domains=members[1]
    )


def provider_outputs(inputs: ProviderInputs) -> list[dict[str, Any]]:
    """The Secret for applications and the relay's ConfigMap and Secret; none for an unusable spec (the last good
    outputs stay where they are)."""
    endpoint = inputs.endpoint
    if inputs.error is not None or endpoint is None:
        return []
    owner = inputs.owner
    username = inputs.oauth.username if inputs.oauth else None
    return [
        smtp_secret(owner, endpoint, inputs.credentials, username=username),
        relay_config_map(
            owner,
            endpoint,
            policies=inputs.policies,
            sending_domains=inputs.sending_domains,
            ca_bundle=inputs.ca_bundle,
        ),
        relay_secret(owner, endpoint, inputs.credentials),
    ]
