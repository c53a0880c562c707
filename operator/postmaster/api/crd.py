"""Generate CustomResourceDefinitions from the pydantic models.

pydantic emits JSON Schema 2020-12; the API server wants a structural OpenAPI v3 schema. The
post-processing here inlines `$defs`, turns `anyOf [X, null]` into `X` + `nullable: true`, drops
titles, defaults (an explicit field must stay distinguishable from a preset's value, and GitOps tools
should see the manifest as written) and `additionalProperties: false` (the API server prunes unknown
fields instead), and keeps descriptions so `kubectl explain` has something to say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from postmaster.api.resources import CATEGORY, RESOURCES, Resource

_DROP_KEYS = {"title", "default", "examples"}
_ALLOWED_KEYS = {
    "type", "description", "properties", "required", "items", "enum", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "nullable", "additionalProperties", "format", "example",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}  # fmt: skip


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline references and translate one schema node, recursively."""
    node = dict(schema)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = dict(target)
        merged.update(node)  # the field's own description wins over the model's docstring
        node = merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        node = {**_resolve(inner, defs), **node}
    if "anyOf" in node:
        options = node.pop("anyOf")
        non_null = [o for o in options if o.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express anyOf with {len(non_null)} non-null options in a structural schema")
        inner = _resolve(non_null[0], defs)
        node = {**inner, **node}
        if len(non_null) < len(options):
            node["nullable"] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or key == "$defs":
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key not in _ALLOWED_KEYS:
            raise ValueError(f"schema keyword {key!r} has no place in a structural schema")
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    first = [k for k in ("type", "description") if k in out]
    return {**{k: out[k] for k in first}, **{k: v for k, v in out.items() if k not in first}}


def structural_schema(model: Any) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _resolve(raw, raw.get("$defs", {}))


def _columns(resource: Resource) -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = []
    for c in resource.columns:
        col: dict[str, Any] = {"name": c.name, "type": c.type, "jsonPath": c.json_path}
        if c.description:
            col["description"] = c.description
        if c.priority:
            col["priority"] = c.priority
        cols.append(col)
    return cols


def crd(resource: Resource) -> dict[str, Any]:
    spec_schema = structural_schema(resource.spec_model)
    status_schema = structural_schema(resource.status_model)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": resource.crd_name,
            "labels": {"app.kubernetes.io/part-of": "postmaster"},
        },
        "spec": {
            "group": resource.group,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": list(resource.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": resource.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _columns(resource),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": resource.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of this object."},
                                "kind": {"type": "string", "description": "Kind of this object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `postmaster crds` from operator/postmaster/api/. Do not edit by hand.\n"


def render_crd_files() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    files: dict[str, str] = {}
    for resource in RESOURCES:
        text = yaml.safe_dump(crd(resource), sort_keys=False, width=100, allow_unicode=True)
        files[f"{resource.group}_{resource.plural}.yaml"] = HEADER + text
    return files


def write_crds(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_crd_files().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
