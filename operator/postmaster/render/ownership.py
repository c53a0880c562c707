"""Owner references and labels for the objects the operator writes.

Children are adopted by hand rather than with kopf.adopt(): adopt() copies the owner's labels, and a
copied `app.kubernetes.io/instance` makes Argo CD treat the child as its own and prune it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postmaster import API_VERSION

MANAGED_BY = {"app.kubernetes.io/managed-by": "postmaster", "app.kubernetes.io/part-of": "postmaster"}


@dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, kind: str, body: Any) -> Owner:
        meta = body["metadata"]
        return cls(kind=kind, name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def child_metadata(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {
            **MANAGED_BY,
            "app.kubernetes.io/component": component,
            f"postmaster.dev/{owner.kind.lower()}": owner.name,
        },
        "ownerReferences": [owner.reference()],
    }


def _owner_keys(refs: list[dict[str, Any]] | None) -> list[list[Any]]:
    return [[o.get("apiVersion"), o.get("kind"), o.get("name"), o.get("uid")] for o in refs or []]


def fingerprint(obj: Mapping[str, Any]) -> str:
    """What an object the operator owns says (labels, owners, type, data, spec), as one digest: equal digests,
    nothing to write. Computed the same way from a rendered manifest and from the object the API server holds."""
    meta = obj.get("metadata") or {}
    content = [
        meta.get("labels") or {},
        _owner_keys(meta.get("ownerReferences")),
        obj.get("type"),
        obj.get("data") or {},
        obj.get("spec"),
    ]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
