"""Put manifests into a cluster: the CRDs (waiting until they are served) and example YAML files.

Used by `postmaster quickstart` (what `make run` calls) and by the tests, so both install the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.dynamic import DynamicClient

FIELD_MANAGER = "postmaster"


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every YAML document of the files (directories expanded, sorted), Namespaces first."""
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
    return sorted(docs, key=lambda d: 0 if d.get("kind") in ("Namespace", "CustomResourceDefinition") else 1)


def install_crds(api: kubernetes.client.ApiClient, crd_dir: Path, *, timeout: float = 60) -> list[str]:
    """Create or update every CRD in `crd_dir` and wait until the API server serves them."""
    ext: Any = kubernetes.client.ApiextensionsV1Api(api)  # takes plain dicts as bodies
    names = []
    for doc in load_documents([crd_dir]):
        name = doc["metadata"]["name"]
        names.append(name)
        try:
            current = ext.read_custom_resource_definition(name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(doc)
            continue
        doc["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, doc)
    deadline = time.monotonic() + timeout
    for name in names:
        while not _established(ext, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} was not Established within {timeout:.0f}s")
            time.sleep(0.2)
    return names


def _established(ext: Any, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def apply_documents(api: kubernetes.client.ApiClient, docs: Iterable[dict[str, Any]]) -> list[str]:
    """Server-side apply each document, as `kubectl apply --server-side` would. Returns kind/name lines."""
    dynamic = DynamicClient(api)
    applied = []
    for doc in docs:
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        meta = doc["metadata"]
        resource.server_side_apply(
            body=doc,
            name=meta["name"],
            namespace=meta.get("namespace") if resource.namespaced else None,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        applied.append(f"{doc['kind'].lower()}/{meta['name']}")
    return applied
