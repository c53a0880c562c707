"""The operator's own calls to the Kubernetes API: a small asyncio client on aiohttp.

kopf already speaks to the API server over aiohttp; the operator's few calls (read a Secret or ConfigMap, write an
output, patch a status, post an Event, write a DNSEndpoint) use the same library with the same credentials (kopf's
login: the service account in a Pod, else the kubeconfig), on one connection pool, without threads. Credentials
are read again when the server answers 401 (a service-account token rotates).

API errors are raised as `KubeError` carrying the status code and the server's reason only: the response body of
a failed Secret write is never logged or put into status.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf

from postmaster import GROUP, VERSION
from postmaster.api.resources import Resource
from postmaster.render.ownership import fingerprint

log = logging.getLogger(__name__)
USER_AGENT = "postmaster-operator"
Login = Callable[[], kopf.ConnectionInfo | None]


class KubeError(Exception):
    def __init__(self, action: str, status: int | None, reason: str | None) -> None:
        super().__init__(f"{action}: HTTP {status} {reason}" if status else f"{action}: {reason}")
        self.status = status


def decode_secret_data(data: Mapping[str, str | bytes] | None) -> dict[str, str]:
    """A Secret's base64 data as text; a value that is not UTF-8 reads as empty (it cannot be a password)."""
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            out[key] = ""
    return out


def _core(namespace: str, plural: str, name: str | None = None) -> str:
    return f"/api/v1/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _custom(group: str, version: str, namespace: str, plural: str, name: str | None = None) -> str:
    return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


class Kube:
    """One API client for the operator's process, made at start-up (see `Runtime`)."""

    def __init__(self, login: Login, *, concurrency: int = 16, timeout: float = 30.0) -> None:
        self._login = login
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._server = ""

    def _connect(self) -> aiohttp.ClientSession:
        info = self._login()
        if info is None:
            raise KubeError("log in", None, "no credentials: neither a service account nor a kubeconfig")
        self._server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency, ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "User-Agent": USER_AGENT},
            timeout=self._timeout,
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        action: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One request; the decoded answer, or None for 404 when `missing_ok`. Raises KubeError."""
        for attempt in (1, 2):
            session = self._session or self._connect()
            headers = {"Content-Type": content_type} if body is not None else None
            data = json.dumps(body).encode() if body is not None else None
            try:
                async with session.request(method, self._server + path, data=data, headers=headers) as response:
                    if response.status == 401 and attempt == 1:  # a rotated token: log in again, once
                        await self.close()
                        continue
                    if response.status == 404 and missing_ok:
                        return None
                    if response.status >= 300:
                        raise KubeError(action, response.status, await _reason(response))
                    answer: dict[str, Any] = await response.json()
                    return answer
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise KubeError(action, None, f"{type(exc).__name__}: the API server did not answer") from None
        raise KubeError(action, 401, "Unauthorized")

    # --- Secrets and ConfigMaps -----------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(decoded data, annotations) of a Secret, or None when it does not exist."""
        action = f"read Secret {namespace}/{name}"
        secret = await self._request("GET", action, _core(namespace, "secrets", name), missing_ok=True)
        if secret is None:
            return None
        return decode_secret_data(secret.get("data")), dict((secret.get("metadata") or {}).get("annotations") or {})

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = await self.read_secret(namespace, name)
        return None if found is None else found[0]

    async def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        path = _core(namespace, "configmaps", name)
        action = f"read ConfigMap {namespace}/{name}"
        cm = await self._request("GET", action, path, missing_ok=True)
        return None if cm is None else dict(cm.get("data") or {})

    async def put(self, manifest: dict[str, Any], *, exists: bool) -> None:
        """Replace a Secret or ConfigMap the operator owns whole when it `exists`, else create it (and replace it
        after all when someone else created it first)."""
        kind, meta = manifest["kind"], manifest["metadata"]
        ns, name = meta["namespace"], meta["name"]
        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]

        async def create() -> None:
            await self._request("POST", f"create {kind} {ns}/{name}", _core(ns, plural), body=manifest)

        if not exists:
            try:
                await create()
            except KubeError as exc:
                if exc.status != 409:
                    raise
            else:
                return
        # Secrets and ConfigMaps allow an update without a resourceVersion: the operator owns them whole.
        try:
            await self._request("PUT", f"update {kind} {ns}/{name}", _core(ns, plural, name), body=manifest)
        except KubeError as exc:
            if exc.status != 404:
                raise
            await create()

    # --- custom objects -------------------------------------------------------------------------------

    async def get_custom(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        path = _custom(GROUP, VERSION, namespace, resource.plural, name)
        action = f"read {resource.kind} {namespace}/{name}"
        return await self._request("GET", action, path, missing_ok=True)

    async def patch_status(self, resource: Resource, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A JSON merge patch (RFC 7396) of the status subresource."""
        await self._request(
            "PATCH",
            f"patch {resource.kind} {namespace}/{name} status",
            _custom(GROUP, VERSION, namespace, resource.plural, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    async def apply_custom(self, manifest: dict[str, Any], group: str, version: str, plural: str) -> bool:
        """Create or replace a custom object the operator owns. Returns whether anything was written.

        Raises KubeError with status 404 when the API server does not serve the kind (its CRD is missing).
        """
        meta = manifest["metadata"]
        ns, name, kind = meta["namespace"], meta["name"], manifest["kind"]
        path = _custom(group, version, ns, plural, name)
        current = await self._request("GET", f"read {kind} {ns}/{name}", path, missing_ok=True)
        if current is None:
            collection = _custom(group, version, ns, plural)
            await self._request("POST", f"create {kind} {ns}/{name}", collection, body=manifest)
            return True
        if fingerprint(current) == fingerprint(manifest):
            return False
        body = {**manifest, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        await self._request("PUT", f"update {kind} {ns}/{name}", path, body=body)
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
            await self._request("POST", "create Event", _core(ref.namespace, "events"), body=event)
        except KubeError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, ref.namespace, ref.name, exc)


async def _reason(response: aiohttp.ClientResponse) -> str:
    """The API server's one-word reason (NotFound, Conflict, Forbidden...), never the message or body."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return response.reason or ""
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason) if reason else response.reason or ""


class ObjectRef:
    """Which object an Event or a status write is about."""

    __slots__ = ("kind", "name", "namespace", "uid")

    def __init__(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        self.kind, self.namespace, self.name, self.uid = kind, namespace, name, uid

    def __repr__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"
