"""OAuth2 access tokens for SMTP ``AUTH XOAUTH2``: a token given as is, or one from the client-credentials grant.

A :class:`TokenSource` hands the SMTP probe a bearer token. :class:`StaticToken` wraps a token that a person (or another
controller) put into a Secret; :class:`ClientCredentialsFlow` asks an identity provider's token endpoint for one
(RFC 6749 section 4.4), keeps it until shortly before it expires and asks again after that, or at once after the mail
server refused it (:meth:`TokenSource.invalidate`).

Microsoft 365 (Exchange Online) accepts application tokens for SMTP AUTH: token URL
``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token``, scope :data:`MICROSOFT_365_SMTP_SCOPE`; the app needs
the ``SMTP.SendAsApp`` application permission and an Exchange service principal with rights on the mailbox.

A failed token request raises :class:`TokenRequestError` carrying the identity provider's ``error`` and
``error_description`` and never the client secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp

from postmaster.checks.secret import Secret

log = logging.getLogger(__name__)

MICROSOFT_365_SMTP_SCOPE = "https://outlook.office365.com/.default"
"""The scope Exchange Online wants in a client-credentials request for SMTP AUTH."""

_MAX_BODY = 64 * 1024
_DEFAULT_LIFETIME = 3600.0


def microsoft_token_url(tenant: str) -> str:
    """The Microsoft identity platform v2.0 token endpoint of a tenant (its id or a verified domain)."""
    if not tenant or any(c in tenant for c in "/?#@ \r\n"):
        raise ValueError("tenant must be a tenant id or domain name")
    return f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"


@runtime_checkable
class TokenSource(Protocol):
    """Where an XOAUTH2 bearer token comes from."""

    @property
    def kind(self) -> str:
        """``static`` or ``client-credentials``: reported in probe results, so messages can say what to fix."""
        ...

    async def get_token(self) -> Secret:
        """A token that is believed valid now."""
        ...

    def invalidate(self) -> None:
        """Forget a cached token: the mail server refused it."""
        ...


@dataclass(frozen=True)
class StaticToken:
    """A bearer token handed over as is (from a Secret); it is never refreshed."""

    token: Secret

    @property
    def kind(self) -> str:
        return "static"

    async def get_token(self) -> Secret:
        return self.token

    def invalidate(self) -> None:
        """Nothing to forget: a person (or whoever wrote the Secret) has to put a new token in."""


class TokenRequestError(Exception):
    """The token endpoint gave no token. Holds what the identity provider said, never the client secret.

    ``transient`` is true when asking again later may help (timeouts, connection errors, HTTP 429 and 5xx).
    """

    def __init__(
        self,
        *,
        token_url: str,
        status: int | None,
        error: str | None,
        description: str | None,
        transient: bool,
    ) -> None:
        self.token_url = token_url
        self.status = status
        self.error = error
        self.description = description
        self.transient = transient
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"token request to {self.token_url} failed"
        parts = [f"HTTP {self.status}"] if self.status is not None else []
        if self.error:
            parts.append(self.error)
        text = f"{where}: {' '.join(parts)}" if parts else where
        if self.description:
            text += f": {self.description}"
        return text


def _check_token_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("token_url must be an https URL")
    if parts.username or parts.password:
        raise ValueError("token_url must not carry credentials")
    if parts.scheme == "http":
        host = parts.hostname
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if not loopback:
            raise ValueError("token_url must use https (plain http is accepted only for loopback test servers)")
    return url


class ClientCredentialsFlow:
    """Fetches and caches an access token with the OAuth2 client-credentials grant.

    The token is reused until ``refresh_margin`` seconds before the ``expires_in`` the endpoint announced (half the
    lifetime for tokens shorter than twice the margin); concurrent callers share one request. The client secret is
    sent in the form body (``client_secret_post``), as Microsoft's and most other endpoints accept.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        scope: str | None = None,
        timeout: float = 10.0,
        refresh_margin: float = 60.0,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_id:
            raise ValueError("client_id is required")
        if not isinstance(client_secret, Secret) or not client_secret:
            raise ValueError("client_secret must be a non-empty Secret")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.token_url = _check_token_url(token_url)
        self.client_id = client_id
        self.scope = scope
        self._client_secret = client_secret
        self._timeout = timeout
        self._refresh_margin = refresh_margin
        self._session = session
        self._clock = clock
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.requests_made = 0

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsFlow(token_url={self.token_url!r}, client_id={self.client_id!r}, scope={self.scope!r})"
        )

    @property
    def kind(self) -> str:
        return "client-credentials"

    @property
    def expires_in(self) -> float | None:
        """Seconds the cached token has left, or None when none is cached."""
        if self._token is None:
            return None
        return self._expires_at - self._clock()

    def invalidate(self) -> None:
        self._token = None

    async def get_token(self) -> Secret:
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            token, lifetime = await self._request()
            now = self._clock()
            margin = self._refresh_margin if lifetime > 2 * self._refresh_margin else lifetime / 2
            self._token = token
            self._expires_at = now + lifetime
            self._refresh_at = now + lifetime - margin
            log.debug("obtained an access token from %s valid for %.0fs", self.token_url, lifetime)
            return token

    def _scrub(self, text: str | None) -> str | None:
        if text is None:
            return None
        secret = self._client_secret.reveal()
        return text.replace(secret, "***") if secret else text

    def _error(
        self, status: int | None, error: str | None, description: str | None, *, transient: bool
    ) -> TokenRequestError:
        return TokenRequestError(
            token_url=self.token_url,
            status=status,
            error=self._scrub(error),
            description=self._scrub(description),
            transient=transient,
        )

    async def _request(self) -> tuple[Secret, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret.reveal(),
        }
        if self.scope:
            form["scope"] = self.scope
        own_session = self._session is None
        session = self._session or aiohttp.ClientSession()
        self.requests_made += 1
        try:
            async with asyncio.timeout(self._timeout):
                async with session.post(
                    self.token_url, data=form, headers={"Accept": "application/json"}, allow_redirects=False
                ) as response:
                    status = response.status
                    raw = await response.content.read(_MAX_BODY)
        except TimeoutError:
            raise self._error(None, "timeout", f"no answer within {self._timeout:g}s", transient=True) from None
        except aiohttp.ClientError as exc:
            raise self._error(None, "connection-failed", type(exc).__name__ + ": " + str(exc), transient=True) from None
        finally:
            if own_session:
                await session.close()
        return self._parse(status, raw)

    def _parse(self, status: int, raw: bytes) -> tuple[Secret, float]:
        try:
            body = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._error(
                status,
                "invalid-response",
                "the token endpoint did not answer with a JSON object",
                transient=status >= 500 or status == 429,
            )
        error = body.get("error")
        description = body.get("error_description")
        if status != 200 or error is not None:
            raise self._error(
                status,
                str(error) if error is not None else None,
                str(description) if description is not None else None,
                transient=status >= 500 or status == 429 or error == "temporarily_unavailable",
            )
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise self._error(status, "invalid-response", "the answer has no access_token", transient=False)
        token_type = body.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise self._error(status, "invalid-response", f"token_type is {token_type!r}, not Bearer", transient=False)
        lifetime = body.get("expires_in", _DEFAULT_LIFETIME)
        try:
            seconds = float(lifetime)
        except (TypeError, ValueError):
            seconds = _DEFAULT_LIFETIME
        return Secret(access_token), max(seconds, 1.0)
