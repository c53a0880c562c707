"""kopf registrations: thin handlers that route every trigger to a provider group reconcile.

Importing this module registers the handlers with kopf's default registry.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from postmaster import GROUP, VERSION
from postmaster.api.mailprovider import MailProviderSpec
from postmaster.api.resources import MAIL_PROVIDER, RESTRICTION_POLICY, SENDING_DOMAIN
from postmaster.handlers import domains, kubeapi, probes
from postmaster.handlers.reconcile import provider_ref, reconcile_group
from postmaster.resolution import referenced_secrets

log = logging.getLogger(__name__)
# kopf marks its prefix as its own and then ignores every annotation under it when it diffs: so its
# bookkeeping lives under operator.postmaster.dev, leaving postmaster.dev/probe-now and
# postmaster.dev/send-test-to visible to the update handler.
PREFIX = f"operator.{GROUP}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """kopf's bookkeeping under operator.postmaster.dev; no finalizers; quiet event posting."""
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own Events say what changed; kopf's would repeat it
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    try:
        kubeapi.load_config()
    except Exception as exc:  # no cluster to talk to: stop with the reason instead of retrying forever
        raise kopf.PermanentError(f"cannot load Kubernetes credentials: {exc}") from exc


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a Pod, the service account; elsewhere the kubeconfig that $KUBECONFIG names at start-up time."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return info


@kopf.index(GROUP, VERSION, MAIL_PROVIDER.plural)
def providers_by_reference(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str | None, str], str]:
    """(kind, namespace, name) of every Secret and ConfigMap a MailProvider reads -> the MailProvider."""
    try:
        model = MailProviderSpec.model_validate(dict(spec))
    except ValidationError:
        return {}  # its status says why; a fixed spec is indexed again
    refs = {("Secret", namespace, secret): name for secret in referenced_secrets(model)}
    if model.ca_bundle_ref is not None:
        refs[("ConfigMap", namespace, model.ca_bundle_ref.name)] = name
    return refs


# --- MailProvider -----------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, MAIL_PROVIDER.plural)
@kopf.on.create(GROUP, VERSION, MAIL_PROVIDER.plural)
@kopf.on.update(GROUP, VERSION, MAIL_PROVIDER.plural)
async def mailprovider_changed(namespace: str | None, name: str, reason: str, diff: kopf.Diff, **_: Any) -> None:
    """Render, then re-probe when the spec changed, then act on on-demand annotations."""
    await reconcile_group(_ns(namespace), name)
    probes.ensure_probing(_ns(namespace), name, reconcile_group)
    if reason == "update" and any(tuple(change[1])[:1] == ("spec",) for change in diff):
        probes.request_probe(_ns(namespace), name)
        for domain in await kubeapi.list_custom(SENDING_DOMAIN, _ns(namespace)):
            if provider_ref(domain) == name:  # the SPF include or DKIM selectors may have changed
                domains.request_check(_ns(namespace), domain["metadata"]["name"])
    body = await kubeapi.get_custom(MAIL_PROVIDER, _ns(namespace), name)
    if body is not None:
        await probes.handle_on_demand(body)


@kopf.on.cleanup()
async def stop_background_checks(**_: Any) -> None:
    await probes.stop_all()
    await domains.stop_all()


def _ns(namespace: str | None) -> str:
    if namespace is None:  # the three kinds and Secrets are namespaced; kopf types it optional
        raise kopf.PermanentError("a namespaced object arrived without a namespace")
    return namespace


def _deleted(type: str | None, **_: Any) -> bool:  # kopf's keyword
    return type == "DELETED"


@kopf.on.event(GROUP, VERSION, MAIL_PROVIDER.plural, when=_deleted)
async def mailprovider_deleted(namespace: str | None, name: str, **_: Any) -> None:
    """A provider that disappears leaves its dependents with ProviderNotFound."""
    await probes.stop_probing(_ns(namespace), name)
    await _after_deletion(_ns(namespace), name)


async def _after_deletion(namespace: str, provider: str) -> None:
    """Reconcile after a deletion. Events are not retried by kopf, and in a namespace being deleted the
    objects vanish under the reconcile (404) or cannot be written (403): nothing is left to fix then."""
    try:
        await reconcile_group(namespace, provider)
    except kubeapi.KubeError as exc:
        if exc.status not in (403, 404, 409):
            raise
        log.info("after a deletion in %s, %s: %s (nothing left to update)", namespace, provider, exc)


# --- SendingDomain and RestrictionPolicy -------------------------------------------------------------


def _refs(old: dict[str, Any] | None, new: dict[str, Any] | None) -> set[str]:
    names = {provider_ref({"spec": (b or {}).get("spec")}) for b in (old, new)}
    return {n for n in names if n}


@kopf.on.resume(GROUP, VERSION, SENDING_DOMAIN.plural)
@kopf.on.create(GROUP, VERSION, SENDING_DOMAIN.plural)
@kopf.on.update(GROUP, VERSION, SENDING_DOMAIN.plural)
async def sendingdomain_changed(
    namespace: str | None, name: str, body: kopf.Body, reason: str, *, old: Any, new: Any, **_: Any
) -> None:
    """Reconcile its group (which starts its DNS checks), and check DNS again at once after a spec change."""
    for provider in sorted(_refs(old, new) | _refs(None, dict(body))):
        await reconcile_group(_ns(namespace), provider)
    if reason == "update":
        domains.request_check(_ns(namespace), name)


@kopf.on.resume(GROUP, VERSION, RESTRICTION_POLICY.plural)
@kopf.on.create(GROUP, VERSION, RESTRICTION_POLICY.plural)
@kopf.on.update(GROUP, VERSION, RESTRICTION_POLICY.plural)
async def restrictionpolicy_changed(namespace: str | None, old: Any, new: Any, body: kopf.Body, **_: Any) -> None:
    """Reconcile the group it belongs to now, and the one it left when providerRef changed."""
    for provider in sorted(_refs(old, new) | _refs(None, dict(body))):
        await reconcile_group(_ns(namespace), provider)


@kopf.on.event(GROUP, VERSION, SENDING_DOMAIN.plural, when=_deleted)
@kopf.on.event(GROUP, VERSION, RESTRICTION_POLICY.plural, when=_deleted)
async def dependent_deleted(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
    """A deleted policy or domain leaves the relay tables of its provider."""
    if body.get("kind") == SENDING_DOMAIN.kind:
        await domains.stop_checking(_ns(namespace), name)
    provider = provider_ref(dict(body))
    if provider:
        await _after_deletion(_ns(namespace), provider)


# --- Secrets -----------------------------------------------------------------------------------------


def _referenced(namespace: str | None, name: str, body: kopf.Body, **kwargs: Any) -> bool:
    index: kopf.Index[Any, Any] = kwargs["providers_by_reference"]  # kopf passes indexes by their function's name
    return (body.get("kind"), namespace, name) in index


@kopf.on.event("", "v1", "secrets", when=_referenced)
@kopf.on.event("", "v1", "configmaps", when=_referenced)
async def reference_changed(namespace: str | None, name: str, body: kopf.Body, type: str | None, **kwargs: Any) -> None:
    """A Secret or ConfigMap a MailProvider reads was created, changed or deleted: re-render and re-probe.

    The body is never logged: only the names.
    """
    index: kopf.Index[Any, Any] = kwargs["providers_by_reference"]
    kind = body.get("kind")
    for provider in sorted(set(index.get((kind, namespace, name), []))):
        log.info("%s %s/%s changed: reconciling MailProvider %s", kind, namespace, name, provider)
        # The probe loop reconciles after it probes: it is also the retry if this reconcile fails.
        probes.request_probe(_ns(namespace), provider)
        if type == "DELETED":
            await _after_deletion(_ns(namespace), provider)
        else:
            await reconcile_group(_ns(namespace), provider)


# --- the operator's own outputs -------------------------------------------------------------------------

_OURS = {"app.kubernetes.io/managed-by": "postmaster"}


def _changed_by_someone_else(type: str | None, body: kopf.Body, **_: Any) -> bool:
    """Deleted, or edited so that it may differ from what the operator wrote (its own writes come back as
    MODIFIED too; the reconcile they cause finds nothing to change and writes nothing)."""
    return type in ("DELETED", "MODIFIED") and not body.get("metadata", {}).get("deletionTimestamp")


@kopf.on.event("", "v1", "secrets", labels=_OURS, when=_changed_by_someone_else)
@kopf.on.event("", "v1", "configmaps", labels=_OURS, when=_changed_by_someone_else)
async def output_changed(namespace: str | None, labels: kopf.Labels, type: str | None, **_: Any) -> None:
    """An output deleted or edited by hand is put back, as cert-manager does with its Secrets."""
    provider = labels.get("postmaster.dev/mailprovider")
    domain = labels.get("postmaster.dev/sendingdomain")
    if provider:
        if type == "DELETED":
            await _after_deletion(_ns(namespace), provider)
        else:
            await reconcile_group(_ns(namespace), provider)
    if domain and type == "DELETED":
        domains.request_check(_ns(namespace), domain)  # the DKIM keys' Secret: regenerated, records listed again
