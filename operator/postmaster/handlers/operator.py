"""kopf registrations: indexes for membership, and thin handlers that route every event to the runtime.

Importing this module registers the handlers with kopf's default registry (`kopf run -m
postmaster.handlers.operator`, or `postmaster run`).

Every handler is an event handler: it hands the event to `Runtime` and returns at once. The work (rendering,
probing, DNS checks) runs in the runtime's schedules, which retry with back-off by themselves. So kopf keeps no
state on the objects: no finalizers, no `last-handled-configuration` annotation, no progress annotations — an
idle cluster costs no writes, and a restart over unchanged objects writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from postmaster import GROUP, VERSION
from postmaster.api.resources import MAIL_PROVIDER, RESTRICTION_POLICY, SENDING_DOMAIN
from postmaster.render.ownership import fingerprint
from postmaster.runtime import Runtime, Settings
from postmaster.runtime.members import (
    OURS,
    DomainMember,
    PolicyMember,
    ProviderEntry,
    domain_member,
    policy_member,
    provider_entry,
    provider_ref,
    references,
)

log = logging.getLogger(__name__)
# kopf marks its prefix as its own and ignores every annotation under it when it diffs; its bookkeeping (of which
# event handlers need none) lives under operator.postmaster.dev, never on postmaster.dev/probe-now and friends.
PREFIX = f"operator.{GROUP}"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Build the runtime (settings from the environment, the API client, the schedules) into memo.runtime."""
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # the operator's own Events say what changed; kopf's would repeat it
    if not log.isEnabledFor(logging.DEBUG):  # "Handler ... succeeded" for every watch event: noise, and CPU at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.peering.standalone = True
    # kopf keeps a worker per object for a while after its last event; an operator of event handlers needs it
    # briefly (a burst of ten thousand new objects otherwise holds thousands of idle workers in memory).
    settings.queueing.idle_timeout = 1.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    try:
        runtime_settings = Settings.from_env()
    except ValueError as exc:  # a bad setting: stop with the reason, do not retry forever
        raise kopf.PermanentError(f"cannot start: {exc}") from exc

    def credentials() -> kopf.ConnectionInfo | None:  # the same as kopf's own, read again after a 401
        return _credentials(settings)

    if credentials() is None:
        raise kopf.PermanentError("cannot start: no service account and no kubeconfig ($KUBECONFIG, ~/.kube/config)")
    indexes = {name: kwargs[name] for name in INDEXES}
    memo.runtime = Runtime(runtime_settings, indexes, credentials)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.stop()


def _credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    return info


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    """In a Pod, the service account; elsewhere the kubeconfig that $KUBECONFIG names."""
    return _credentials(settings)


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


def _deleted(type: str | None) -> bool:  # kopf's keyword
    return type == "DELETED"


# --- indexes: membership and references, from memory --------------------------------------------------------
# (async, though they never wait: kopf runs a plain function in a thread pool, a hop per event that costs more than
# the function)


@kopf.index(GROUP, VERSION, MAIL_PROVIDER.plural)
async def mailproviders_by_name(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Any, ProviderEntry]:
    """(namespace, name) -> what the provider's spec resolves to (or why it cannot)."""
    return {(namespace, name): provider_entry(body)}


@kopf.index(GROUP, VERSION, SENDING_DOMAIN.plural)
async def sendingdomains_by_provider(namespace: str | None, body: kopf.Body, **_: Any) -> dict[Any, DomainMember]:
    """(namespace, providerRef) -> the domain's name and the domain it sends from."""
    ref = provider_ref(body)
    return {(namespace, ref): domain_member(body)} if ref else {}


@kopf.index(GROUP, VERSION, RESTRICTION_POLICY.plural)
async def restrictionpolicies_by_provider(namespace: str | None, body: kopf.Body, **_: Any) -> dict[Any, PolicyMember]:
    """(namespace, providerRef) -> the policy, parsed."""
    ref = provider_ref(body)
    return {(namespace, ref): policy_member(body)} if ref else {}


@kopf.index(GROUP, VERSION, MAIL_PROVIDER.plural)
async def providers_by_reference(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, str]:
    """(kind, namespace, name) of every Secret and ConfigMap a MailProvider reads -> the MailProvider."""
    return references(provider_entry(body), namespace, name) if namespace else {}


@kopf.index("", "v1", "secrets", labels=OURS)
@kopf.index("", "v1", "configmaps", labels=OURS)
async def outputs_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, str]:
    """(kind, namespace, name) of each object the operator wrote -> a digest of what it says now."""
    return {(body.get("kind"), namespace, name): fingerprint(body)}


INDEXES = (
    "mailproviders_by_name",
    "sendingdomains_by_provider",
    "restrictionpolicies_by_provider",
    "providers_by_reference",
    "outputs_by_name",
)


# --- the three kinds ---------------------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, MAIL_PROVIDER.plural)
async def mailprovider_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    runtime.observe_provider(body, deleted=_deleted(type))
    if not _deleted(type):
        await runtime.probes.on_demand(dict(body))


@kopf.on.event(GROUP, VERSION, SENDING_DOMAIN.plural)
async def sendingdomain_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).observe_domain(body, deleted=_deleted(type))


@kopf.on.event(GROUP, VERSION, RESTRICTION_POLICY.plural)
async def restrictionpolicy_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).observe_policy(body, deleted=_deleted(type))


# --- Secrets and ConfigMaps ------------------------------------------------------------------------------------


def _referenced(namespace: str | None, name: str, body: kopf.Body, **kwargs: Any) -> bool:
    index: kopf.Index[Any, Any] = kwargs["providers_by_reference"]  # kopf passes indexes by their function's name
    return (body.get("kind"), namespace, name) in index


@kopf.on.event("", "v1", "secrets", when=_referenced)
@kopf.on.event("", "v1", "configmaps", when=_referenced)
async def reference_event(namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Secret or ConfigMap a MailProvider reads was created, changed or deleted. The body is never logged."""
    _runtime(memo).observe_reference(str(body.get("kind")), namespace or "", name)


@kopf.on.event("", "v1", "secrets", labels=OURS)
@kopf.on.event("", "v1", "configmaps", labels=OURS)
async def output_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """An object the operator wrote changed or went away (the initial listing is not news: every provider is
    rendered at start-up anyway)."""
    if type is None or body.get("metadata", {}).get("deletionTimestamp"):
        return  # listed at start-up, or being garbage-collected with its owner
    _runtime(memo).observe_output(body, deleted=_deleted(type))
