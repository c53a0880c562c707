"""The committed CRDs are exactly what the models generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from postmaster.api.crd import render_crd_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("directory", ["crds", "charts/postmaster/crds"])
def test_committed_crds_match_the_models(directory: str) -> None:
    files = render_crd_files()
    crd_dir = ROOT / directory
    assert sorted(p.name for p in crd_dir.glob("*.yaml")) == sorted(files)
    for name, text in files.items():
        assert (crd_dir / name).read_text(encoding="utf-8") == text, (
            f"{directory}/{name} drifted: run `postmaster crds`"
        )


def test_postmaster_crds_check_reproduces_the_files_byte_for_byte(tmp_path: Path) -> None:
    from postmaster.cli.main import main

    assert main(["crds", "-o", str(tmp_path)]) == 0
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (ROOT / "crds" / path.name).read_bytes()
    assert main(["crds", "--check", "-o", str(tmp_path)]) == 0
    (tmp_path / path.name).write_text("edited\n")
    assert main(["crds", "--check", "-o", str(tmp_path)]) == 1


def _walk(node: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(node, dict):
        for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "title", "default", "$defs"):
            if forbidden in node:
                problems.append(f"{path}: {forbidden}")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties without type object")
        for key, value in node.items():
            problems += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _walk(value, f"{path}[{i}]")
    return problems


def test_schemas_are_structural_and_explained() -> None:
    for text in render_crd_files().values():
        doc = yaml.safe_load(text)
        version = doc["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        assert _walk(schema) == []
        spec = schema["properties"]["spec"]
        assert spec["type"] == "object"
        for name, prop in spec["properties"].items():
            assert prop.get("description"), f"{doc['metadata']['name']} spec.{name} has no description"
        assert doc["spec"]["names"]["categories"] == ["mail"]
        assert version["subresources"] == {"status": {}}
        columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
        assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
        assert columns["Reason"]["priority"] == 1
        assert "Age" in columns


def test_host_port_and_tls_are_constrained_at_admission() -> None:
    doc = yaml.safe_load(render_crd_files()["postmaster.dev_mailproviders.yaml"])
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["port"]["minimum"] == 1
    assert props["port"]["maximum"] == 65535
    assert props["tls"]["enum"] == ["starttls", "implicit", "none"]
    assert "pattern" in props["host"]
    assert spec["required"] == ["from"]
