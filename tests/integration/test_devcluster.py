"""The local control plane against itself: CRDs and custom resources, garbage collection, namespaces."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client import ApiClient, ApiException

pytestmark = pytest.mark.integration


def _eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took, or fail after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - started


def _gone(read: Callable[[], object]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    return check


@pytest.fixture
def widget_crd(kube_api: ApiClient) -> Iterator[dict[str, str]]:
    """A namespaced CRD with a structural schema, unique to this test, deleted afterwards."""
    ext = kubernetes.client.ApiextensionsV1Api(kube_api)
    suffix = secrets.token_hex(3)
    group = f"t{suffix}.postmaster.test"
    plural = "widgets"
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "colour": {"type": "string", "enum": ["red", "blue"]},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    name = body["metadata"]["name"]  # type: ignore[index]
    ext.create_custom_resource_definition(body)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    try:
        _eventually(established, 30, f"CRD {name} established")
        yield {"group": group, "version": "v1", "plural": plural, "name": name}
    finally:
        ext.delete_custom_resource_definition(name)


def test_crd_with_structural_schema_accepts_custom_resource_writes(
    kube_api: ApiClient, namespace: str, widget_crd: dict[str, str]
) -> None:
    # The first custom-resource write is what crashed kube-apiserver 1.20 with the vendored reflect2 1.0.1.
    objects = kubernetes.client.CustomObjectsApi(kube_api)
    g, v, p = widget_crd["group"], widget_crd["version"], widget_crd["plural"]
    widget = {
        "apiVersion": f"{g}/{v}",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3, "colour": "red", "labels": {"a": "b"}, "unknown": "pruned"},
    }
    created = objects.create_namespaced_custom_object(g, v, namespace, p, widget)
    assert created["spec"] == {"size": 3, "colour": "red", "labels": {"a": "b"}}  # unknown field pruned

    patched = objects.patch_namespaced_custom_object(g, v, namespace, p, "w1", {"spec": {"size": 5}})
    assert patched["spec"]["size"] == 5
    status = objects.patch_namespaced_custom_object_status(
        g, v, namespace, p, "w1", {"status": {"phase": "Ready", "detail": {"x": 1}}}
    )
    assert status["status"] == {"phase": "Ready", "detail": {"x": 1}}

    with pytest.raises(ApiException) as invalid:
        objects.create_namespaced_custom_object(
            g, v, namespace, p, {**widget, "metadata": {"name": "w2"}, "spec": {"size": 0, "colour": "green"}}
        )
    assert invalid.value.status == 422

    listed = objects.list_namespaced_custom_object(g, v, namespace, p)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["w1"]
    # The API server is still there after the writes.
    kubernetes.client.CoreV1Api(kube_api).read_namespace(namespace)


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(kube_api: ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="owner"))
    )
    reference = kubernetes.client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(name="owned", owner_references=[reference]),
            data={"k": "v"},
        ),
    )
    core.create_namespaced_config_map(
        namespace, kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="bystander"))
    )

    core.delete_namespaced_config_map("owner", namespace)
    took = _eventually(
        _gone(lambda: core.read_namespaced_config_map("owned", namespace)),
        30,
        "the garbage collector deleting the owned ConfigMap",
    )
    assert took < 15, f"garbage collection took {took:.1f}s"
    core.read_namespaced_config_map("bystander", namespace)  # not owned: kept


def test_namespace_controller_finishes_namespace_deletion(kube_api: ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    name = f"pm-ns-deletion-{secrets.token_hex(3)}"
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="content"))
    )
    core.delete_namespace(name)
    _eventually(_gone(lambda: core.read_namespace(name)), 60, f"namespace {name} deleted")


def test_kube_config_fixture_configures_the_kubernetes_client(kube_config: Path) -> None:
    # load_kube_config() set the default configuration: a client built without arguments reaches the server.
    with kubernetes.client.ApiClient() as client:
        names = [ns.metadata.name for ns in kubernetes.client.CoreV1Api(client).list_namespace().items]
    assert "default" in names
    assert kubernetes.client.Configuration.get_default_copy().verify_ssl is True
