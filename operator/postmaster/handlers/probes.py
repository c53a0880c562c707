"""SMTP probes of MailProviders: one daemon per provider, one global concurrency limit for all.

The daemon probes at `spec.probe.interval`, retries transient failures with backoff, and after a
failure only a person can fix (rejected credentials, TLS mismatch) waits for a change instead of
hammering the server. A change to the spec or a credentials Secret, and the annotation
`postmaster.dev/probe-now`, wake it at once. Each outcome is handed to the provider group's reconcile,
which writes status: so status is computed in one place, from the spec and the latest probe.

`postmaster.dev/send-test-to: ops@example.com` sends one real test message (at most one per
`spec.probe.testEmailMinInterval`); the value may carry more text after a space to make a new request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from postmaster.api.common import parse_duration
from postmaster.api.mailprovider import AuthMethod, MailProviderSpec, TLSMode
from postmaster.api.resources import MAIL_PROVIDER
from postmaster.checks import smtp
from postmaster.checks.oauth2 import ClientCredentialsFlow, StaticToken
from postmaster.checks.secret import Secret
from postmaster.handlers import kubeapi
from postmaster.handlers.loops import Key, Loops, Reconcile
from postmaster.handlers.status import update_status
from postmaster.probe_status import probe_view
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
from postmaster.statuses import ProbeView, spec_error_from_validation

log = logging.getLogger(__name__)

PROBE_NOW = "postmaster.dev/probe-now"
SEND_TEST_TO = "postmaster.dev/send-test-to"
RETRY_FIRST = timedelta(seconds=float(os.environ.get("POSTMASTER_PROBE_RETRY_SECONDS", "15")))


@dataclass
class _Published:
    view: ProbeView
    at: datetime


_published: dict[Key, _Published] = {}
_flows: dict[tuple[Key, str, str, str | None, str], ClientCredentialsFlow] = {}
_limiter: asyncio.Semaphore | None = None


def limiter() -> asyncio.Semaphore:
    """The operator-wide bound on concurrent SMTP sessions (POSTMASTER_PROBE_CONCURRENCY, default 8)."""
    global _limiter  # noqa: PLW0603  (one per process, created inside the running loop)
    if _limiter is None:
        _limiter = asyncio.Semaphore(int(os.environ.get("POSTMASTER_PROBE_CONCURRENCY", "8")))
    return _limiter


def latest_view(namespace: str, name: str) -> ProbeView | None:
    published = _published.get((namespace, name))
    return published.view if published else None


@dataclass(frozen=True)
class Target:
    """Everything needed to talk to the provider, resolved from the spec and its Secrets."""

    spec: MailProviderSpec
    endpoint: Endpoint
    config: smtp.ProbeConfig
    hints: smtp.ProbeHints


def hints_for(endpoint: Endpoint) -> smtp.ProbeHints:
    entry = endpoint.entry
    rate = None
    if endpoint.rate_limit is not None:
        rate = (
            f"{entry.title} allows {endpoint.rate_limit.messages} messages per "
            f"{int(endpoint.rate_limit.per.total_seconds())} s; keep spec.rateLimit at or below it."
        )
    elif endpoint.daily_limit is not None:
        rate = f"{entry.title} allows {endpoint.daily_limit} messages per day."
    return smtp.ProbeHints(
        provider=entry.title,
        auth=entry.auth_hint or None,
        rate_limit=rate,
        oauth2=f"Request scope {entry.oauth2_scope}." if entry.oauth2_scope else None,
    )


def _token_source(key: Key, oauth: OAuth2Credentials) -> StaticToken | ClientCredentialsFlow:
    if oauth.token is not None:
        return StaticToken(Secret(oauth.token))
    if not (oauth.token_url and oauth.client_id and oauth.client_secret):  # resolve_oauth2 sets all three
        raise SpecError("spec.auth.oauth2.clientCredentials", "tokenURL, clientId and the client secret are needed")
    # Tokens are cached per provider and client; a rotated client secret starts a new cache entry.
    fingerprint = hashlib.sha256(oauth.client_secret.encode()).hexdigest()
    cache_key = (key, oauth.token_url, oauth.client_id, oauth.scope, fingerprint)
    flow = _flows.get(cache_key)
    if flow is None:
        flow = ClientCredentialsFlow(
            token_url=oauth.token_url,
            client_id=oauth.client_id,
            client_secret=Secret(oauth.client_secret),
            scope=oauth.scope,
        )
        _flows[cache_key] = flow
    return flow


def parse_spec(body: dict[str, Any]) -> MailProviderSpec:
    try:
        return MailProviderSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        raise spec_error_from_validation(exc) from None


async def read_credentials(
    namespace: str, spec: MailProviderSpec, endpoint: Endpoint
) -> tuple[Credentials | None, OAuth2Credentials | None]:
    """The password or the XOAUTH2 token source, from the Secrets the spec names. Raises SpecError."""
    secrets = {name: await kubeapi.read_secret_data(namespace, name) for name in referenced_secrets(spec)}
    if endpoint.auth_method is AuthMethod.XOAUTH2:
        return None, resolve_oauth2(spec, endpoint, secrets)
    if endpoint.auth_method is AuthMethod.NONE:
        return None, None
    ref = spec.auth.credentials_secret_ref if spec.auth else None
    return resolve_credentials(spec, endpoint, secrets.get(ref.name) if ref else None), None


async def read_ca_bundle(namespace: str, spec: MailProviderSpec) -> str | None:
    """The PEM CA certificates spec.caBundleRef names, or None without one. Raises SpecError."""
    ref = spec.ca_bundle_ref
    if ref is None:
        return None
    pem = ((await kubeapi.read_configmap_data(namespace, ref.name)) or {}).get(ref.key)
    if not pem:
        raise SpecError(
            "spec.caBundleRef", f"ConfigMap {ref.name!r} key {ref.key!r} does not exist or is empty", "CABundleNotFound"
        )
    return pem


async def resolve_target(body: dict[str, Any], key: Key) -> Target:
    """Read the Secrets the provider names and build a probe configuration. Raises SpecError."""
    namespace = key[0]
    spec = parse_spec(body)
    endpoint = resolve_endpoint(spec)
    password, oauth = await read_credentials(namespace, spec, endpoint)
    ca_pem = await read_ca_bundle(namespace, spec)
    step = parse_duration(spec.probe.timeout).total_seconds()
    config = smtp.ProbeConfig(
        host=endpoint.host,
        port=endpoint.port,
        tls={TLSMode.STARTTLS: smtp.TlsMode.STARTTLS, TLSMode.IMPLICIT: smtp.TlsMode.IMPLICIT}.get(
            endpoint.tls, smtp.TlsMode.NONE
        ),
        tls_verify=endpoint.tls_verify,
        ca_bundle_pem=ca_pem,
        auth=smtp.AuthMethod(endpoint.auth_method.value),
        username=(password.username if password else oauth.username if oauth else None),
        password=Secret(password.password) if password else None,
        token=_token_source(key, oauth) if oauth else None,
        mail_from=spec.probe.mail_from or endpoint.from_address,
        rcpt_to=spec.probe.rcpt_to,
        timeouts=smtp.Timeouts.uniform(step),
    )
    return Target(spec=spec, endpoint=endpoint, config=config, hints=hints_for(endpoint))


async def probe_once(namespace: str, name: str, failures: int, reconcile: Reconcile) -> tuple[float | None, int]:
    """Probe, publish the outcome, reconcile. Returns (seconds until the next probe or None, failures)."""
    key = (namespace, name)
    body = await kubeapi.get_custom(MAIL_PROVIDER, namespace, name)
    if body is None:
        _published.pop(key, None)
        return None, 0
    try:
        target = await resolve_target(body, key)
    except SpecError:
        return None, 0  # the reconcile reports it; a change wakes the daemon
    if not target.spec.probe.enabled:
        return None, 0
    interval = parse_duration(target.spec.probe.interval)
    result = await smtp.probe(target.config, limiter=limiter())
    verdict = smtp.classify(result, target.hints)
    now = datetime.now(UTC)
    view = probe_view(result, verdict, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    previous = _published.get(key)
    same = previous is not None and previous.view.condition == view.condition
    if not same or previous is None or now - previous.at >= interval:
        _published[key] = _Published(view, now)  # a fresh timestamp at most once per interval
    log.info("probe %s/%s: %s (%s)", namespace, name, verdict.reason.value, verdict.status)
    await reconcile(namespace, name)
    if verdict.status == "True":
        return interval.total_seconds(), 0
    if verdict.transient:
        backoff = min(RETRY_FIRST * (2**failures), interval)
        return backoff.total_seconds(), failures + 1
    if verdict.needs_person:
        return None, 0  # stop hammering: wait for a change to the spec, the Secret, or probe-now
    return interval.total_seconds(), 0


loops = Loops("SMTP probe", probe_once, retry=RETRY_FIRST, on_stop=lambda key: _published.pop(key, None))
ensure_probing = loops.ensure
stop_probing = loops.stop
stop_all = loops.stop_all
request_probe = loops.wake


# --- on-demand requests -----------------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Decision:
    accepted: bool
    record: dict[str, Any]


def decide(previous: dict[str, Any] | None, request: str, min_interval: timedelta, now: datetime) -> Decision | None:
    """Whether a new on-demand request is accepted. None when this request was already handled."""
    previous = previous or {}
    if previous.get("request") == request:
        return None
    last = _parse_time(previous.get("lastAcceptedTime"))
    next_allowed = last + min_interval if last else now
    accepted = now >= next_allowed
    record: dict[str, Any] = {
        "request": request,
        "handledTime": _fmt(now),
        "accepted": accepted,
        "lastAcceptedTime": _fmt(now) if accepted else previous.get("lastAcceptedTime"),
        "nextAllowedTime": _fmt(now + min_interval) if accepted else _fmt(next_allowed),
    }
    if not accepted:
        record["outcome"] = "Throttled"
        record["message"] = (
            f"Refused: one request per {min_interval}; the next will be accepted after {_fmt(next_allowed)}. "
            "Annotate again then."
        )
    return Decision(accepted, {k: v for k, v in record.items() if v is not None})


async def _write_record(namespace: str, name: str, field: str, record: dict[str, Any]) -> None:
    def compute(_body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return {**old, field: record}

    await update_status(MAIL_PROVIDER, namespace, name, compute)


async def handle_on_demand(body: dict[str, Any]) -> None:
    """Act on postmaster.dev/probe-now and postmaster.dev/send-test-to annotations not yet handled."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    annotations = meta.get("annotations") or {}
    status = body.get("status") or {}
    try:
        spec = MailProviderSpec.model_validate(body.get("spec") or {})
    except ValueError:
        return  # the reconcile reports an invalid spec
    now = datetime.now(UTC)
    probe_request = annotations.get(PROBE_NOW)
    if probe_request:
        decision = decide(
            status.get("probeRequest"), probe_request, parse_duration(spec.probe.probe_now_min_interval), now
        )
        if decision is not None:
            if decision.accepted:
                decision.record.update(outcome="Probing", message="Probe started; see status.probe.")
                request_probe(namespace, name)
            await _write_record(namespace, name, "probeRequest", decision.record)
            await _event_for(body, decision.record, "ProbeRequested", "ProbeThrottled")
    test_request = annotations.get(SEND_TEST_TO)
    if test_request:
        decision = decide(
            status.get("testEmail"), test_request, parse_duration(spec.probe.test_email_min_interval), now
        )
        if decision is not None:
            if decision.accepted:
                decision.record.update(await _send_test(body, test_request.split()[0]))
            await _write_record(namespace, name, "testEmail", decision.record)
            await _event_for(body, decision.record, "TestEmailSent", "TestEmailNotSent")


async def _event_for(body: dict[str, Any], record: dict[str, Any], ok_reason: str, bad_reason: str) -> None:
    good = record.get("accepted") and record.get("outcome") in ("Sent", "Probing")
    await kubeapi.post_event(
        body,
        type_="Normal" if good else "Warning",
        reason=ok_reason if good else bad_reason,
        message=record.get("message", ""),
    )


async def _send_test(body: dict[str, Any], recipient: str) -> dict[str, Any]:
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    try:
        target = await resolve_target(body, key)
        result = await smtp.send_test_email(target.config, recipient, limiter=limiter())
    except SpecError as exc:
        return {"outcome": exc.reason, "message": f"Not sent: {exc.field_path}: {exc.message}"}
    except ValueError as exc:
        return {"outcome": "InvalidRecipient", "message": f"Not sent: {exc}"}
    if result.accepted:
        queued = f" as {result.queue_id}" if result.queue_id else ""
        sent = {
            "outcome": "Sent",
            "message": f"{target.endpoint.host} accepted the test message to {recipient}{queued} "
            f"(Message-ID {result.message_id}).",
        }
        return {**sent, "queueId": result.queue_id} if result.queue_id else sent
    verdict = smtp.classify(result.probe, target.hints)
    return {"outcome": verdict.reason.value, "message": f"Not sent to {recipient}: {verdict.message}"}
