"""The operator's settings, read from the environment once at start-up (the README lists them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if parsed <= 0:
        raise ValueError(f"{name}={value!r} must be greater than zero")
    return parsed


@dataclass(frozen=True)
class Settings:
    """Every knob of the running operator. Each field names its environment variable."""

    dns_nameservers: tuple[str, ...] = ()
    """POSTMASTER_DNS_NAMESERVERS: comma-separated host[:port] the DNS checks ask (default: the system resolver),
    unless a SendingDomain's spec.dns names its own."""
    dns_retry_seconds: float = 30.0
    """POSTMASTER_DNS_RETRY_SECONDS: how soon a DNS check is retried after a timeout or SERVFAIL."""
    dns_concurrency: int = 32
    """POSTMASTER_DNS_CONCURRENCY: SendingDomains checked at once."""
    dns_cache_entries: int = 10_000
    """POSTMASTER_DNS_CACHE_ENTRIES: answers the shared DNS cache keeps (each is about a kilobyte; a SendingDomain
    asks about seven names). Names many domains share stay hot; past the bound the oldest answers go first."""
    probe_retry_seconds: float = 15.0
    """POSTMASTER_PROBE_RETRY_SECONDS: the first back-off after a transient probe failure (then doubling)."""
    probe_concurrency: int = 8
    """POSTMASTER_PROBE_CONCURRENCY: SMTP sessions (probes and test emails) at once."""
    render_delay_seconds: float = 0.2
    """POSTMASTER_RENDER_DELAY_SECONDS: how long a provider's outputs wait for more changes before they are
    rendered (a burst of a thousand new SendingDomains is rendered a few times, not a thousand)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        servers = tuple(s.strip() for s in env.get("POSTMASTER_DNS_NAMESERVERS", "").split(",") if s.strip())
        return cls(
            dns_nameservers=servers,
            dns_retry_seconds=_float(env, "POSTMASTER_DNS_RETRY_SECONDS", cls.dns_retry_seconds),
            dns_concurrency=int(_float(env, "POSTMASTER_DNS_CONCURRENCY", cls.dns_concurrency)),
            dns_cache_entries=int(_float(env, "POSTMASTER_DNS_CACHE_ENTRIES", cls.dns_cache_entries)),
            probe_retry_seconds=_float(env, "POSTMASTER_PROBE_RETRY_SECONDS", cls.probe_retry_seconds),
            probe_concurrency=int(_float(env, "POSTMASTER_PROBE_CONCURRENCY", cls.probe_concurrency)),
            render_delay_seconds=_float(env, "POSTMASTER_RENDER_DELAY_SECONDS", cls.render_delay_seconds),
        )
