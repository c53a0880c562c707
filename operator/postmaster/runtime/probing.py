"""SMTP probes of MailProviders: one schedule per provider, one limit on SMTP sessions for the whole operator.

A provider is probed at `spec.probe.interval`; transient failures are retried with back-off; after a failure only
a person can fix (rejected credentials, TLS mismatch) it waits for a change instead of hammering the server. A
change to the spec or a credentials Secret, and the annotation `postmaster.dev/probe-now`, make it due at once.
The probe writes only its own provider's `SMTPReachable`, `status.probe` and the `Ready` summarized from them
(`statuses.mailprovider_status`, the same function the outputs reconcile uses); a probe that finds what the last
one found writes nothing.

`postmaster.dev/send-test-to: ops@example.com` sends one real test message (at most one per
`spec.probe.testEmailMinInterval`); the value may carry more text after a space to make a new request.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from postmaster.api.common import parse_duration
from postmaster.api.mailprovider import MailProviderSpec, MailProviderStatus, OnDemandStatus, TLSMode
from postmaster.api.resources import MAIL_PROVIDER
from postmaster.checks import smtp
from postmaster.checks.oauth2 import ClientCredentialsFlow, StaticToken
from postmaster.checks.secret import Secret
from postmaster.conditions import Stamp, now_rfc3339
from postmaster.gather import ProviderInputs
from postmaster.probe_status import probe_outcome, same_facts
from postmaster.resolution import Endpoint, OAuth2Credentials, SpecError
from postmaster.runtime.kube import ObjectRef
from postmaster.runtime.scheduler import Scheduler
from postmaster.statuses import ProbeOutcome, mailprovider_status, stored_probe

if TYPE_CHECKING:
    from postmaster.runtime import Runtime

log = logging.getLogger(__name__)

PROBE_NOW = "postmaster.dev/probe-now"
SEND_TEST_TO = "postmaster.dev/send-test-to"
Key = tuple[str, str]


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


@dataclass(frozen=True)
class Target:
    """Everything needed to talk to the provider, from its gathered inputs."""

    spec: MailProviderSpec
    endpoint: Endpoint
    config: smtp.ProbeConfig
    hints: smtp.ProbeHints


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


class Probes:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        settings = runtime.settings
        self._retry_first = timedelta(seconds=settings.probe_retry_seconds)
        self.scheduler: Scheduler[Key] = Scheduler(
            "SMTP probe", self._step, concurrency=settings.probe_concurrency, retry_first=settings.probe_retry_seconds
        )
        self._failures: dict[Key, int] = {}
        self._flows: dict[tuple[Key, str, str, str | None, str], ClientCredentialsFlow] = {}

    def wake(self, namespace: str, name: str) -> None:
        self.scheduler.wake((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self.scheduler.forget(key)
        self._failures.pop(key, None)
        for flow_key in [k for k in self._flows if k[0] == key]:
            del self._flows[flow_key]

    def _token_source(self, key: Key, oauth: OAuth2Credentials) -> StaticToken | ClientCredentialsFlow:
        if oauth.token is not None:
            return StaticToken(Secret(oauth.token))
        if not (oauth.token_url and oauth.client_id and oauth.client_secret):  # resolve_oauth2 sets all three
            raise SpecError("spec.auth.oauth2.clientCredentials", "tokenURL, clientId and the client secret are needed")
        # Tokens are cached per provider and client; a rotated client secret starts a new cache entry.
        fingerprint = hashlib.sha256(oauth.client_secret.encode()).hexdigest()
        cache_key = (key, oauth.token_url, oauth.client_id, oauth.scope, fingerprint)
        flow = self._flows.get(cache_key)
        if flow is None:
            flow = ClientCredentialsFlow(
                token_url=oauth.token_url,
                client_id=oauth.client_id,
                client_secret=Secret(oauth.client_secret),
                scope=oauth.scope,
            )
            self._flows[cache_key] = flow
        return flow

    def target(self, inputs: ProviderInputs) -> Target:
        """The probe's configuration from gathered inputs. Raises SpecError when they are unusable."""
        if inputs.error is not None:
            raise inputs.error
        spec, endpoint = inputs.spec, inputs.endpoint
        if spec is None or endpoint is None:
            raise SpecError("spec", "the spec cannot be used")
        password, oauth = inputs.credentials, inputs.oauth
        key = (inputs.owner.namespace, inputs.owner.name)
        config = smtp.ProbeConfig(
            host=endpoint.host,
            port=endpoint.port,
            tls={TLSMode.STARTTLS: smtp.TlsMode.STARTTLS, TLSMode.IMPLICIT: smtp.TlsMode.IMPLICIT}.get(
                endpoint.tls, smtp.TlsMode.NONE
            ),
            tls_verify=endpoint.tls_verify,
            ca_bundle_pem=inputs.ca_bundle,
            auth=smtp.AuthMethod(endpoint.auth_method.value),
            username=(password.username if password else oauth.username if oauth else None),
            password=Secret(password.password) if password else None,
            token=self._token_source(key, oauth) if oauth else None,
            mail_from=spec.probe.mail_from or endpoint.from_address,
            rcpt_to=spec.probe.rcpt_to,
            timeouts=smtp.Timeouts.uniform(parse_duration(spec.probe.timeout).total_seconds()),
        )
        return Target(spec=spec, endpoint=endpoint, config=config, hints=hints_for(endpoint))

    async def _step(self, key: Key) -> float | None:
        """Probe, write the outcome when it tells something new. Returns seconds until the next probe or None."""
        namespace, name = key
        rt = self._rt
        entry = rt.members.provider(namespace, name)
        if entry is None or entry.spec is None or not entry.spec.probe.enabled:
            return None  # gone, invalid (the outputs reconcile says why) or not to be probed: nothing to read
        inputs = await rt.outputs.gather(namespace, name)
        if inputs is None:
            return None
        try:
            target = self.target(inputs)
        except SpecError:
            return None  # the outputs reconcile reports it; a change makes the probe due again
        if not target.spec.probe.enabled:
            return None
        interval = parse_duration(target.spec.probe.interval)
        result = await smtp.probe(target.config, limiter=rt.smtp_slots)
        verdict = smtp.classify(result, target.hints)
        stamp = Stamp(entry.generation, now_rfc3339())
        outcome = probe_outcome(result, verdict, stamp)
        log.info("probe %s/%s: %s (%s)", namespace, name, verdict.reason.value, verdict.status)

        def compute(old: MailProviderStatus) -> MailProviderStatus:
            stored = stored_probe(old)
            told = stored is not None and _told(stored, outcome)
            return mailprovider_status(inputs.facts(), None if told else outcome, old, stamp)

        ref = ObjectRef(MAIL_PROVIDER.kind, namespace, name, entry.uid)
        await rt.statuses.update(MAIL_PROVIDER, ref, MailProviderStatus, compute)
        failures = self._failures.pop(key, 0)
        if verdict.status == "True":
            return interval.total_seconds()
        if verdict.transient:
            self._failures[key] = failures + 1
            backoff: timedelta = min(self._retry_first * (2**failures), interval)
            return backoff.total_seconds()
        if verdict.needs_person:
            return None  # stop hammering: wait for a change to the spec, the Secret, or probe-now
        return interval.total_seconds()

    async def on_demand(self, body: dict[str, Any]) -> None:
        """Act on postmaster.dev/probe-now and postmaster.dev/send-test-to annotations not yet handled.

        What was handled is read from the status book (the operator's own latest write), not from the event's
        body, which may predate it."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        annotations = meta.get("annotations") or {}
        probe_request, test_request = annotations.get(PROBE_NOW), annotations.get(SEND_TEST_TO)
        if not (probe_request or test_request):
            return
        entry = self._rt.members.provider(namespace, name)
        if entry is None or entry.spec is None:
            return  # the outputs reconcile reports an invalid spec
        ref = ObjectRef(MAIL_PROVIDER.kind, namespace, name, entry.uid)
        status = self._rt.statuses.stored(MAIL_PROVIDER, ref, MailProviderStatus) or MailProviderStatus()
        spec = entry.spec
        now = datetime.now(UTC)
        if probe_request:
            previous = _record(status.probe_request)
            decision = decide(previous, probe_request, parse_duration(spec.probe.probe_now_min_interval), now)
            if decision is not None:
                if decision.accepted:
                    decision.record.update(outcome="Probing", message="Probe started; see status.probe.")
                    self.wake(namespace, name)
                await self._write_record(ref, "probe_request", decision.record)
                await self._event_for(ref, decision.record, "ProbeRequested", "ProbeThrottled")
        if test_request:
            previous = _record(status.test_email)
            decision = decide(previous, test_request, parse_duration(spec.probe.test_email_min_interval), now)
            if decision is not None:
                if decision.accepted:
                    decision.record.update(await self._send_test(namespace, name, test_request.split()[0]))
                await self._write_record(ref, "test_email", decision.record)
                await self._event_for(ref, decision.record, "TestEmailSent", "TestEmailNotSent")

    async def _write_record(self, ref: ObjectRef, field: str, record: dict[str, Any]) -> None:
        value = OnDemandStatus.model_validate(record)

        def compute(old: MailProviderStatus) -> MailProviderStatus:
            return old.model_copy(update={field: value})

        await self._rt.statuses.update(MAIL_PROVIDER, ref, MailProviderStatus, compute)

    async def _event_for(self, ref: ObjectRef, record: dict[str, Any], ok_reason: str, bad_reason: str) -> None:
        good = record.get("accepted") and record.get("outcome") in ("Sent", "Probing")
        await self._rt.kube.post_event(
            ref,
            type_="Normal" if good else "Warning",
            reason=ok_reason if good else bad_reason,
            message=record.get("message", ""),
        )

    async def _send_test(self, namespace: str, name: str, recipient: str) -> dict[str, Any]:
        inputs = await self._rt.outputs.gather(namespace, name)
        if inputs is None:
            return {"outcome": "ProviderNotFound", "message": "Not sent: the MailProvider is gone."}
        try:
            target = self.target(inputs)
            result = await smtp.send_test_email(target.config, recipient, limiter=self._rt.smtp_slots)
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


def _record(status: OnDemandStatus | None) -> dict[str, Any] | None:
    return None if status is None else status.model_dump(mode="json", by_alias=True, exclude_none=True)


def _told(stored: ProbeOutcome, outcome: ProbeOutcome) -> bool:
    """Whether the stored probe already says what this one found (same verdict, same facts)."""
    a, b = stored.condition, outcome.condition
    same_verdict = (a.status, a.reason, a.message) == (b.status, b.reason, b.message)
    return same_verdict and same_facts(stored.summary, outcome.summary)
