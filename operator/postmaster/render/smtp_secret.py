"""Secret `<provider>-smtp`: what an application needs to send through a MailProvider.

Keys are environment-variable names, so the Secret works both with `envFrom` and as mounted files.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from postmaster.api.mailprovider import TLSMode
from postmaster.render.ownership import Owner, child_metadata
from postmaster.resolution import Credentials, Endpoint

SECRET_KEYS = (
    "SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SMTP_AUTH_METHOD", "SMTP_USERNAME", "SMTP_PASSWORD",
    "SMTP_FROM", "SMTP_FROM_NAME", "SMTP_URL",
)  # fmt: skip


def smtp_secret_name(provider: str) -> str:
    return f"{provider}-smtp"


def smtp_url(endpoint: Endpoint, credentials: Credentials | None) -> str:
    """smtp://user:pass@host:port (STARTTLS or plain) or smtps://... (implicit TLS), parts percent-encoded."""
    scheme = "smtps" if endpoint.tls is TLSMode.IMPLICIT else "smtp"
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    userinfo = ""
    if credentials is not None:
        userinfo = f"{quote(credentials.username, safe='')}:{quote(credentials.password, safe='')}@"
    return f"{scheme}://{userinfo}{host}:{endpoint.port}"


def smtp_secret_data(
    endpoint: Endpoint, credentials: Credentials | None, *, username: str | None = None
) -> dict[str, str]:
    """`username` stands alone for XOAUTH2, where applications bring their own token."""
    data = {
        "SMTP_HOST": endpoint.host,
        "SMTP_PORT": str(endpoint.port),
        "SMTP_TLS": endpoint.tls.value,
        "SMTP_AUTH_METHOD": endpoint.auth_method.value,
        "SMTP_FROM": endpoint.from_address,
        "SMTP_URL": smtp_url(endpoint, credentials),
    }
    if endpoint.from_name:
        data["SMTP_FROM_NAME"] = endpoint.from_name
    if credentials is not None:
        data["SMTP_USERNAME"] = credentials.username
        data["SMTP_PASSWORD"] = credentials.password
    elif username is not None:
        data["SMTP_USERNAME"] = username
    return data


def encode_data(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode("utf-8")).decode("ascii") for k, v in sorted(data.items())}


def smtp_secret(
    owner: Owner, endpoint: Endpoint, credentials: Credentials | None, *, username: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": child_metadata(owner, smtp_secret_name(owner.name), "smtp-credentials"),
        "data": encode_data(smtp_secret_data(endpoint, credentials, username=username)),
    }
