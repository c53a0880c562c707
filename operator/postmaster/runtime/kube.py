"""The operator's own calls to the Kubernetes API, on the official client, off the event loop, counted.

API errors are re-raised as `KubeError` carrying the status code and the server's reason only: the response
body of a failed Secret write is never logged or put into status. Every request is counted by verb and
resource (`Kube.requests`), so the benchmark can compare what the operator thinks it asked with what the API
server counted.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from postmaster import GROUP, VERSION
from postmaster.api.resources import Resource

log = logging.getLogger(__name__)
USER_AGENT = "postmaster-operator"
_UNREAD = {"_preload_content": False}  # the response body is not decoded (nor read into models)


class KubeError(Exception):
    def __init__(self, action: str, status: int | None, reason: str | None) -> None:
        super().__init__(f"{action}: HTTP {status} {reason}")
        self.status = status


def load_config() -> None:
    """In-cluster service account when running in a Pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        # The client reads $KUBECONFIG once, at import; read it now so a later change is honoured.
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)


def decode_secret_data(data: Mapping[str, str | bytes] | None) -> dict[str, str]:
    """A Secret's base64 data as text; a value that is not UTF-8 reads as empty (it cannot be a password)."""
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            out[key] = ""
    return out


def _request(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One blocking request; a response left undecoded is still read to its end, so its connection is reused."""
    result = fn(*args, **kwargs)
    if kwargs.get("_preload_content", True):
        return result
    result.read()
    result.release_conn()
    return None


class Kube:
    """One API client for the operator's process, made at start-up (see `Runtime`).

    The official client blocks, so calls run on a pool of `concurrency` threads of its own (as many as the HTTP
    connection pool holds), not on asyncio's small default pool shared with everything else. Writes whose answer
    the operator does not read skip decoding it."""

    def __init__(self, concurrency: int = 16) -> None:
        configuration = kubernetes.client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = concurrency
        client = kubernetes.client.ApiClient(configuration)
        client.user_agent = USER_AGENT
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.requests: Counter[tuple[str, str]] = Counter()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kube-api")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(
        self, verb: str, resource: str, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        self.requests[(verb, resource)] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, partial(_request, fn, *args, **kwargs))
        except ApiException as exc:
            raise KubeError(action, exc.status, exc.reason) from None

    async def _or_none(self, verb: str, resource: str, action: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._call(verb, resource, action, fn, *args)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    # --- Secrets and ConfigMaps -----------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(decoded data, annotations) of a Secret, or None when it does not exist."""
        secret = await self._or_none(
            "get", "secrets", f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace
        )
        if secret is None:
            return None
        annotations = secret.metadata.annotations if secret.metadata is not None else None
        return decode_secret_data(secret.data), dict(annotations or {})

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = await self.read_secret(namespace, name)
        return None if found is None else found[0]

    async def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = await self._or_none(
            "get",
            "configmaps",
            f"read ConfigMap {namespace}/{name}",
            self.core.read_namespaced_config_map,
            name,
            namespace,
        )
        return None if cm is None else dict(cm.data or {})

    async def put(self, manifest: dict[str, Any]) -> None:
        """Create a Secret or ConfigMap the operator owns, or replace it whole when it exists."""
        kind, meta = manifest["kind"], manifest["metadata"]
        ns, name = meta["namespace"], meta["name"]
        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
        create: Callable[..., Any] = self.core.create_namespaced_secret
        replace: Callable[..., Any] = self.core.replace_namespaced_secret
        if kind == "ConfigMap":
            create, replace = self.core.create_namespaced_config_map, self.core.replace_namespaced_config_map
        try:
            await self._call("create", plural, f"create {kind} {ns}/{name}", create, ns, manifest, **_UNREAD)
        except KubeError as exc:
            if exc.status != 409:
                raise
            # Secrets and ConfigMaps allow an update without a resourceVersion: the operator owns them whole.
            await self._call("update", plural, f"update {kind} {ns}/{name}", replace, name, ns, manifest, **_UNREAD)

    # --- custom objects -------------------------------------------------------------------------------

    async def get_custom(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        body: dict[str, Any] | None = await self._or_none(
            "get",
            resource.plural,
            f"read {resource.kind} {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            resource.plural,
            name,
        )
        return body

    async def patch_status(self, resource: Resource, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._call(
            "patch",
            f"{resource.plural}/status",
            f"patch {resource.kind} {namespace}/{name} status",
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            resource.plural,
            name,
            {"status": status},
            **_UNREAD,
        )

    async def apply_custom(self, manifest: dict[str, Any], group: str, version: str, plural: str) -> bool:
        """Create or replace a custom object the operator owns. Returns whether anything was written.

        Raises KubeError with status 404 when the API server does not serve the kind (its CRD is missing).
        """
        meta = manifest["metadata"]
        ns, name, kind = meta["namespace"], meta["name"], manifest["kind"]
        custom = self.custom
        current: dict[str, Any] | None = await self._or_none(
            "get",
            plural,
            f"read {kind} {ns}/{name}",
            custom.get_namespaced_custom_object,
            group,
            version,
            ns,
            plural,
            name,
        )
        if current is None:
            await self._call("create", plural, f"create {kind} {ns}/{name}", custom.create_namespaced_custom_object,
                             group, version, ns, plural, manifest)  # fmt: skip
            return True
        if same_object(current, manifest):
            return False
        body = {**manifest, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        await self._call("update", plural, f"update {kind} {ns}/{name}", custom.replace_namespaced_custom_object,
                         group, version, ns, plural, name, body)  # fmt: skip
        return True

    # --- Events ---------------------------------------------------------------------------------------

    async def post_event(self, ref: ObjectRef, *, type_: str, reason: str, message: str) -> None:
        """Record an Event on an object. Failures are logged, never raised: events are best effort."""
        now = datetime.now(UTC).isoformat()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "type": type_,
            "reason": reason[:128],
            "message": message[:1024],
            "source": {"component": "postmaster"},
            "reportingComponent": "postmaster.dev/operator",
            "reportingInstance": "postmaster",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._call(
                "create", "events", "create Event", self.core.create_namespaced_event, ref.namespace, event
            )
        except KubeError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, ref.namespace, ref.name, exc)


class ObjectRef:
    """Which object an Event or a status write is about."""

    __slots__ = ("kind", "name", "namespace", "uid")

    def __init__(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        self.kind, self.namespace, self.name, self.uid = kind, namespace, name, uid

    def __repr__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def _owner_keys(refs: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    return [(o.get("apiVersion"), o.get("kind"), o.get("name"), o.get("uid")) for o in refs or []]


def same_object(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether an object the operator owns already says what `desired` says (labels, the annotations it
    sets, owner references, data, type, spec)."""
    have, want = existing.get("metadata", {}), desired["metadata"]
    return (
        (have.get("labels") or {}) == want.get("labels", {})
        and all((have.get("annotations") or {}).get(k) == v for k, v in want.get("annotations", {}).items())
        and _owner_keys(have.get("ownerReferences")) == _owner_keys(want.get("ownerReferences"))
        and (existing.get("data") or {}) == desired.get("data", {})
        and existing.get("type") == desired.get("type")
        and existing.get("spec") == desired.get("spec")
    )
