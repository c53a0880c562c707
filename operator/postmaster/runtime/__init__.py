"""The running operator's one object: API client, status book, schedules, DNS cache, limits and settings.

Built once at start-up and reached by the kopf handlers through `memo.runtime`; nothing lives at module level.
Three schedules do the work, each writing only what it owns:

* `outputs` (per MailProvider): gather → decide → apply the Secret and relay ConfigMap/Secret; the provider's
  `CredentialsResolved`; the member RestrictionPolicies' status;
* `probes` (per MailProvider): the SMTP probe, the provider's `SMTPReachable` and `status.probe`;
* `domains` (per SendingDomain): the DNS checks and DKIM rotation, the domain's whole status.

Handlers only route events here (`observe_*`); every piece of work retries by itself with back-off, so an event
is never lost to a failed handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from postmaster.api.resources import MAIL_PROVIDER, RESTRICTION_POLICY, SENDING_DOMAIN
from postmaster.runtime.dnschecks import DomainChecks
from postmaster.runtime.kube import Kube, Login
from postmaster.runtime.members import Members, provider_ref
from postmaster.runtime.outputs import Outputs
from postmaster.runtime.probing import Probes
from postmaster.runtime.settings import Settings
from postmaster.runtime.statusbook import StatusBook

log = logging.getLogger(__name__)

__all__ = ["Runtime", "Settings"]


class Runtime:
    def __init__(self, settings: Settings, indexes: Mapping[str, Any], login: Login) -> None:
        self.settings = settings
        self.members = Members(indexes)
        self.kube = Kube(login)
        self.statuses = StatusBook(self.kube)
        self.smtp_slots = asyncio.Semaphore(settings.probe_concurrency)
        self.outputs = Outputs(self)
        self.probes = Probes(self)
        self.domains = DomainChecks(self)
        self._seen_providers: dict[tuple[str, str], tuple[str, int | None]] = {}
        self._seen_policies: dict[tuple[str, str], tuple[str, int | None, str | None]] = {}

    async def stop(self) -> None:
        for scheduler in (self.outputs.scheduler, self.probes.scheduler, self.domains.scheduler):
            await scheduler.stop()
        await self.kube.close()

    # --- events ---------------------------------------------------------------------------------------

    def observe_provider(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self.statuses.observe(MAIL_PROVIDER, body, deleted=deleted)
        if deleted:
            self._seen_providers.pop(key, None)
            self.probes.forget(*key)
            self.outputs.request(*key)  # members learn that it is gone
            return
        seen = (meta["uid"], meta.get("generation"))
        if self._seen_providers.get(key) == seen:
            return
        changed_spec = key in self._seen_providers  # a new generation, not a first sight
        self._seen_providers[key] = seen
        self.outputs.request(*key)
        self.probes.wake(*key)
        if changed_spec:  # the SPF include or DKIM selectors its domains need may have changed
            for member in self.members.domains(*key):
                self.domains.wake(key[0], member.name)

    def observe_domain(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        self.statuses.observe(SENDING_DOMAIN, body, deleted=deleted)
        for provider in self.domains.observe(body, deleted=deleted):
            self.outputs.request(body["metadata"]["namespace"], provider)

    def observe_policy(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self.statuses.observe(RESTRICTION_POLICY, body, deleted=deleted)
        before = self._seen_policies.pop(key, None)
        now = None if deleted else (meta["uid"], meta.get("generation"), provider_ref(body))
        if now is not None:
            self._seen_policies[key] = now
        if before == now:
            return
        for provider in {p for p in (before and before[2], now and now[2]) if p}:
            self.outputs.request(key[0], provider)

    def observe_reference(self, kind: str, namespace: str, name: str) -> None:
        """A Secret or ConfigMap that MailProviders read was created, changed or deleted (never logged: names only)."""
        for provider in sorted(self.members.providers_reading(kind, namespace, name)):
            log.info("%s %s/%s changed: rendering and probing MailProvider %s", kind, namespace, name, provider)
            self.outputs.request(namespace, provider)
            self.probes.wake(namespace, provider)

    def observe_output(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        """An output changed: the operator's own write coming back is ignored; an edit or deletion by hand is
        put back, as cert-manager does with its Secrets; a DKIM keys Secret deleted is made again."""
        meta = body["metadata"]
        labels = meta.get("labels") or {}
        namespace = meta["namespace"]
        provider = labels.get("postmaster.dev/mailprovider")
        domain = labels.get("postmaster.dev/sendingdomain")
        ours = provider and self.members.provider(namespace, provider) is not None
        if ours and (deleted or not self.outputs.wrote(dict(body))):
            self.outputs.forget_written(str(body.get("kind")), namespace, meta["name"])
            self.outputs.request(namespace, str(provider))
        if domain and deleted:
            self.domains.wake(namespace, domain)
