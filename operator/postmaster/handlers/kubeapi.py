"""The operator's few calls to the Kubernetes API, on the official client, off the event loop.

API errors are re-raised as `KubeError` carrying the status code and the server's reason only: the
response body of a failed Secret write is never logged or put into status.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from postmaster import GROUP, VERSION
from postmaster.api.resources import Resource

log = logging.getLogger(__name__)
T = TypeVar("T")

_clients: dict[str, Any] = {}


class KubeError(Exception):
    def __init__(self, action: str, exc: ApiException) -> None:
        super().__init__(f"{action}: HTTP {exc.status} {exc.reason}")
        self.status = exc.status


def load_config() -> None:
    """In-cluster service account when running in a Pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        # The client reads $KUBECONFIG once, at import; read it now so a later change is honoured.
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    _clients.clear()


def _api(kind: str) -> Any:
    if kind not in _clients:
        client = kubernetes.client.ApiClient()
        _clients["core"] = kubernetes.client.CoreV1Api(client)
        _clients["custom"] = kubernetes.client.CustomObjectsApi(client)
    return _clients[kind]


async def _call(action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ApiException as exc:
        raise KubeError(action, exc) from None


async def _call_or_none(action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    try:
        return await _call(action, fn, *args, **kwargs)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def _sanitize(obj: Any) -> Any:
    return _api("core").api_client.sanitize_for_serialization(obj)


async def read_secret_data(namespace: str, name: str) -> dict[str, str] | None:
    """The Secret's data decoded to text, or None when it does not exist."""
    secret = await _call_or_none(
        f"read Secret {namespace}/{name}", _api("core").read_namespaced_secret, name, namespace
    )
    if secret is None:
        return None
    out: dict[str, str] = {}
    for key, value in (secret.data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            out[key] = ""  # binary data cannot be a password; treated as empty, reported by key name only
    return out


async def read_configmap_data(namespace: str, name: str) -> dict[str, str] | None:
    cm = await _call_or_none(
        f"read ConfigMap {namespace}/{name}", _api("core").read_namespaced_config_map, name, namespace
    )
    return None if cm is None else dict(cm.data or {})


def _owner_keys(refs: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    return [(o.get("apiVersion"), o.get("kind"), o.get("name"), o.get("uid")) for o in refs or []]


def _same(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    have, want = existing.get("metadata", {}), desired["metadata"]
    return (
        (have.get("labels") or {}) == want.get("labels", {})
        and all((have.get("annotations") or {}).get(k) == v for k, v in want.get("annotations", {}).items())
        and _owner_keys(have.get("ownerReferences")) == _owner_keys(want.get("ownerReferences"))
        and (existing.get("data") or {}) == desired.get("data", {})
        and existing.get("type") == desired.get("type")
        and existing.get("spec") == desired.get("spec")
    )


async def apply(manifest: dict[str, Any]) -> bool:
    """Create or update a Secret or ConfigMap owned by the operator. Returns whether anything was written."""
    kind, meta = manifest["kind"], manifest["metadata"]
    ns, name = meta["namespace"], meta["name"]
    core = _api("core")
    read, create, replace = {
        "Secret": (core.read_namespaced_secret, core.create_namespaced_secret, core.replace_namespaced_secret),
        "ConfigMap": (
            core.read_namespaced_config_map,
            core.create_namespaced_config_map,
            core.replace_namespaced_config_map,
        ),
    }[kind]
    current = await _call_or_none(f"read {kind} {ns}/{name}", read, name, ns)
    if current is None:
        await _call(f"create {kind} {ns}/{name}", create, ns, manifest)
        return True
    existing = _sanitize(current)
    if _same(existing, manifest):
        return False
    body = {**manifest, "metadata": {**meta, "resourceVersion": existing["metadata"]["resourceVersion"]}}
    await _call(f"update {kind} {ns}/{name}", replace, name, ns, body)
    return True


async def apply_custom(manifest: dict[str, Any], group: str, version: str, plural: str) -> bool:
    """Create or replace a custom object the operator owns. Returns whether anything was written.

    Raises KubeError with status 404 when the API server does not serve the kind (its CRD is missing).
    """
    meta = manifest["metadata"]
    ns, name = meta["namespace"], meta["name"]
    custom = _api("custom")
    current = await _call_or_none(
        f"read {manifest['kind']} {ns}/{name}", custom.get_namespaced_custom_object, group, version, ns, plural, name
    )
    if current is None:
        await _call(f"create {manifest['kind']} {ns}/{name}", custom.create_namespaced_custom_object,
                    group, version, ns, plural, manifest)  # fmt: skip
        return True
    if _same(current, manifest):
        return False
    body = {**manifest, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
    await _call(f"update {manifest['kind']} {ns}/{name}", custom.replace_namespaced_custom_object,
                group, version, ns, plural, name, body)  # fmt: skip
    return True


async def read_secret(namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """(decoded data, annotations) of a Secret, or None when it does not exist."""
    secret = await _call_or_none(
        f"read Secret {namespace}/{name}", _api("core").read_namespaced_secret, name, namespace
    )
    if secret is None:
        return None
    data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.data or {}).items()}
    return data, dict(secret.metadata.annotations or {})


async def get_custom(resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
    return await _call_or_none(
        f"read {resource.kind} {namespace}/{name}",
        _api("custom").get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        resource.plural,
        name,
    )


async def list_custom(resource: Resource, namespace: str) -> list[dict[str, Any]]:
    result = await _call(
        f"list {resource.plural} in {namespace}",
        _api("custom").list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        resource.plural,
    )
    items: list[dict[str, Any]] = result.get("items", [])
    return items


async def patch_status(resource: Resource, namespace: str, name: str, status: dict[str, Any]) -> None:
    await _call(
        f"patch {resource.kind} {namespace}/{name} status",
        _api("custom").patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        resource.plural,
        name,
        {"status": status},
    )


async def post_event(body: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
    """Record an Event on an object. Failures are logged, never raised: events are best effort."""
    meta = body["metadata"]
    now = datetime.now(UTC)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "postmaster"},
        "reportingComponent": "postmaster.dev/operator",
        "reportingInstance": "postmaster",
        "firstTimestamp": now.isoformat(),
        "lastTimestamp": now.isoformat(),
        "count": 1,
    }
    try:
        await _call("create Event", _api("core").create_namespaced_event, meta["namespace"], event)
    except KubeError as exc:
        log.warning("could not record event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc)
