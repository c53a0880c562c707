"""Runs last: no credential used by the operator tests appears in logs, events, status or ConfigMaps.

Every test registers the credential values it puts into Secrets (OperatorHandle.remember_secret); this
module sweeps everything the operator wrote or said during the whole session for them.
"""

from __future__ import annotations

import json

import kubernetes
import pytest

from postmaster import GROUP, VERSION
from tests.fixtures.operator import OperatorHandle

pytestmark = pytest.mark.integration


def test_no_credential_anywhere(operator: OperatorHandle, kube_api: kubernetes.client.ApiClient) -> None:
    assert len(operator.secrets_used) >= 8, "the operator tests did not run before this sweep"
    core = kubernetes.client.CoreV1Api(kube_api)
    custom = kubernetes.client.CustomObjectsApi(kube_api)
    haystacks: dict[str, str] = {"operator logs": "\n".join(operator.logs.lines)}
    assert len(operator.logs.lines) > 50  # the capture really saw the operator at work
    events = core.list_event_for_all_namespaces().items
    haystacks["events"] = "\n".join(f"{e.reason} {e.message}" for e in events)
    haystacks["configmaps"] = json.dumps([cm.data for cm in core.list_config_map_for_all_namespaces().items])
    for plural in ("mailproviders", "sendingdomains", "restrictionpolicies"):
        items = custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        haystacks[f"{plural} status and metadata"] = json.dumps([(i.get("status"), i["metadata"]) for i in items])
    for where, text in haystacks.items():
        for value in operator.secrets_used:
            assert value not in text, f"a credential leaked into {where}"
