"""A MailProvider's outputs: gather its inputs, decide the Secret and relay ConfigMap/Secret, write what differs.

Runs when an input of the outputs changed — the provider's spec, a Secret or ConfigMap it reads, a member
RestrictionPolicy, the set of member SendingDomains, an output edited or deleted by hand — and never because a
DNS check or a probe finished. It owns `CredentialsResolved`, `endpoint` and `outputs` in the provider's status,
and the status of member RestrictionPolicies (it is what compiles them into the relay). When the provider's
standing changes (found, stalled, usable again), it wakes the member SendingDomains' checks, which write their own
`ProviderResolved`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from postmaster.api.mailprovider import MailProviderStatus
from postmaster.api.resources import MAIL_PROVIDER, RESTRICTION_POLICY
from postmaster.api.restrictionpolicy import RestrictionPolicyStatus
from postmaster.conditions import Stamp, now_rfc3339
from postmaster.gather import ProviderInputs, gather_provider, provider_outputs
from postmaster.render.access import NamedPolicy
from postmaster.render.ownership import Owner, fingerprint
from postmaster.render.relay import relay_name
from postmaster.resolution import SpecError
from postmaster.runtime.kube import ObjectRef
from postmaster.runtime.members import PolicyMember
from postmaster.runtime.scheduler import Scheduler
from postmaster.statuses import PROBE_DISABLED, ProviderStanding, mailprovider_status, restrictionpolicy_status

if TYPE_CHECKING:
    from postmaster.runtime import Runtime

log = logging.getLogger(__name__)

Key = tuple[str, str]


class KubeReferences:
    """`References` read from the API server, in one namespace."""

    def __init__(self, runtime: Runtime, namespace: str) -> None:
        self._kube = runtime.kube
        self._namespace = namespace

    async def secret(self, name: str) -> dict[str, str] | None:
        return await self._kube.read_secret_data(self._namespace, name)

    async def configmap(self, name: str) -> dict[str, str] | None:
        return await self._kube.read_configmap_data(self._namespace, name)


class Outputs:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.scheduler: Scheduler[Key] = Scheduler(
            "rendering outputs", self._step, concurrency=4, retry_first=1.0, retry_max=60.0
        )
        self._standing: dict[Key, ProviderStanding] = {}
        self._written: dict[tuple[str, str, str], str] = {}
        self._told: dict[Key, ProviderStanding] = {}  # the standing member SendingDomains were last woken for

    def request(self, namespace: str, provider: str) -> None:
        """Render soon: changes arriving within the render delay are rendered together."""
        self.scheduler.wake((namespace, provider), self._rt.settings.render_delay_seconds)

    def standing(self, namespace: str, provider: str) -> ProviderStanding:
        """What members see of the provider: from the index (found, spec) and the last render (Secrets)."""
        entry = self._rt.members.provider(namespace, provider)
        if entry is None:
            return ProviderStanding(provider, found=False)
        if entry.error is not None:
            return ProviderStanding(provider, found=True, error=entry.error)
        rendered = self._standing.get((namespace, provider))
        return ProviderStanding(provider, found=True, error=rendered.error if rendered else None)

    def wrote(self, manifest_or_body: dict[str, object]) -> bool:
        """Whether this object says what the operator last wrote to it (its own write coming back as an event)."""
        meta = manifest_or_body.get("metadata")
        if not isinstance(meta, dict):
            return False
        key = (str(manifest_or_body.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        return self._written.get(key) == fingerprint(manifest_or_body)

    async def gather(self, namespace: str, provider: str) -> ProviderInputs | None:
        """The provider's inputs, members included; None when it does not exist."""
        members = self._rt.members
        entry = members.provider(namespace, provider)
        if entry is None:
            return None
        policies = [
            NamedPolicy(namespace, p.name, p.spec) for p in members.policies(namespace, provider) if p.spec is not None
        ]
        domains = [d.domain for d in members.domains(namespace, provider) if d.domain is not None]
        owner = Owner(MAIL_PROVIDER.kind, provider, namespace, entry.uid)
        spec = entry.spec if entry.spec is not None else (entry.error or SpecError("spec", "invalid"))
        return await gather_provider(
            owner, spec, KubeReferences(self._rt, namespace), policies=policies, sending_domains=domains
        )

    async def _step(self, key: Key) -> float | None:
        namespace, name = key
        rt = self._rt
        entry = rt.members.provider(namespace, name)
        inputs = await self.gather(namespace, name)
        if entry is not None and inputs is not None:
            for manifest in provider_outputs(inputs):
                await self._write(manifest)
            stamp = Stamp(entry.generation, now_rfc3339())
            probe = PROBE_DISABLED if inputs.spec is not None and not inputs.spec.probe.enabled else None
            ref = ObjectRef(MAIL_PROVIDER.kind, namespace, name, entry.uid)
            await rt.statuses.update(
                MAIL_PROVIDER,
                ref,
                MailProviderStatus,
                lambda old: mailprovider_status(inputs.facts(outputs_written=True), probe, old, stamp),
            )
            self._standing[key] = ProviderStanding(name, found=True, error=inputs.error)
        else:
            self._standing.pop(key, None)
        await self._write_policies(namespace, name)
        standing = self.standing(namespace, name)
        if standing != self._told.get(key):
            self._told[key] = standing
            for member in self._rt.members.domains(namespace, name):
                self._rt.domains.wake(namespace, member.name)
        return None

    async def _write(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        key = (str(manifest["kind"]), str(meta["namespace"]), str(meta["name"]))
        digest = fingerprint(manifest)
        current = self._rt.members.output(*key)
        if digest in (current, self._written.get(key)):
            return
        await self._rt.kube.put(manifest, exists=current is not None or key in self._written)
        self._written[key] = digest
        log.info("wrote %s %s/%s", key[0], key[1], key[2])

    async def _write_policies(self, namespace: str, provider: str) -> None:
        standing = self.standing(namespace, provider)
        relay = relay_name(provider)
        for policy in self._rt.members.policies(namespace, provider):
            stamp = Stamp(policy.generation, now_rfc3339())
            ref = ObjectRef(RESTRICTION_POLICY.kind, namespace, policy.name, policy.uid)

            def compute(
                old: RestrictionPolicyStatus, member: PolicyMember = policy, s: Stamp = stamp
            ) -> RestrictionPolicyStatus:
                return restrictionpolicy_status(standing, member.error, old, s, name=member.name, relay_name=relay)

            await self._rt.statuses.update(RESTRICTION_POLICY, ref, RestrictionPolicyStatus, compute)

    def forget_written(self, kind: str, namespace: str, name: str) -> None:
        self._written.pop((kind, namespace, name), None)
