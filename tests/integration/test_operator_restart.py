"""A restarted operator over unchanged objects writes nothing and changes no condition.

A restart is a new process with no memory: it lists every object, renders every provider, probes it and checks
every domain's DNS again. Here a second operator process is started, in the test's namespace, next to the one the
test session runs: it finds the same verdicts the first one wrote, so it must write nothing — no status, no output,
no Event — and the running operator, over objects that do not change, must stay quiet too.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dns import NsdServer
from tests.fixtures.operator import Cluster, OperatorHandle
from tests.fixtures.smtp import SmtpServer
from tests.integration.test_operator_dns import SENDER_IP, domain_spec, zone_records
from tests.integration.test_operator_probe import condition, provider, setup, until

pytestmark = pytest.mark.integration
MP, SD, RP = "mailproviders", "sendingdomains", "restrictionpolicies"


def snapshot(ns: Cluster) -> dict[str, Any]:
    """Every object's resourceVersion and conditions, and the Events, as the API server has them now."""
    state: dict[str, Any] = {}
    for plural, name in ((MP, "local"), (SD, "site"), (RP, "internal")):
        body = ns.get(plural, name)
        state[f"{plural}/{name}"] = {
            "resourceVersion": body["metadata"]["resourceVersion"],
            "status": body.get("status"),
        }
    for name in ("local-smtp", "local-relay"):
        state[f"secrets/{name}"] = ns.core.read_namespaced_secret(name, ns.ns).metadata.resource_version
    state["configmaps/local-relay"] = ns.core.read_namespaced_config_map("local-relay", ns.ns).metadata.resource_version
    state["events"] = sorted(e.metadata.name for e in ns.events())
    return state


def _lines(value: Any) -> list[str]:
    return json.dumps(value, indent=1, sort_keys=True).splitlines()


def start_operator(namespace: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "postmaster", "run", "--verbose", "-n", namespace],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_restart_over_unchanged_objects_writes_nothing(
    cluster: Cluster,
    operator: OperatorHandle,
    submission_server: SmtpServer,
    nsd: NsdServer,
    kube_config: Path,
    tmp_path: Path,
) -> None:
    ns = cluster
    if "test" not in nsd.zones:
        nsd.zone("test", "", ttl=1, negative_ttl=1)
    await setup(ns, operator, submission_server)
    await asyncio.to_thread(ns.create, MP, "local", provider(submission_server))
    domain = f"{ns.ns}.test"
    nsd.zone(domain, zone_records(f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none"), ttl=1, negative_ttl=1)
    spec = domain_spec(domain, nsd.nameserver)
    spec["providerRef"] = {"name": "local"}
    await asyncio.to_thread(ns.create, SD, "site", spec)
    # The operator generates the DKIM key and lists its record; publish it, as a person would.
    await until(lambda: (ns.get(SD, "site").get("status") or {}).get("dkim", {}).get("pendingSelector"), within=30)
    dkim = ns.get(SD, "site")["status"]
    selector = dkim["dkim"]["pendingSelector"]
    value = next(r["value"] for r in dkim["records"] if r["name"].startswith(f"{selector}._domainkey."))
    spf, dmarc = f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none"
    nsd.zone(domain, zone_records(spf, dmarc, {selector: value}), ttl=1, negative_ttl=1)
    policy = {"providerRef": {"name": "local"}, "localDomains": ["example.com"], "send": {"mode": "LocalDomain"}}
    await asyncio.to_thread(ns.create, RP, "internal", policy)

    await until(condition(ns, "local", "Ready", "True"), what="provider Ready")

    def ready(plural: str, name: str) -> bool:
        c = ns.condition(plural, name, "Ready")
        return bool(c and c["status"] == "True")

    await until(lambda: ready(SD, "site"), within=30, what="domain Ready")
    await until(lambda: ns.get(SD, "site")["status"]["dkim"].get("activeSelector") == selector, what="key active")
    await until(lambda: ready(RP, "internal"), what="policy Ready")
    await asyncio.sleep(3)  # let the first round of checks and their writes settle
    before = await asyncio.to_thread(snapshot, ns)

    log = tmp_path / "second-operator.log"
    env = {**os.environ, "KUBECONFIG": str(kube_config)}
    second = await asyncio.to_thread(start_operator, ns.ns, env, log)
    try:
        # Its start-up work: render the provider, probe it (the server answers in this process's loop), check
        # the domain. The probe is the slowest; once it is logged, the rest had the same time to happen.
        deadline = time.monotonic() + 60
        while f"probe {ns.ns}/local: Succeeded" not in (text := await asyncio.to_thread(log.read_text)):
            assert second.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, text[-3000:]
            await asyncio.sleep(0.2)
        await asyncio.sleep(4)
        after = await asyncio.to_thread(snapshot, ns)
        assert second.poll() is None, text[-3000:]
    finally:
        second.terminate()
        await asyncio.to_thread(second.wait, 30)
    text = await asyncio.to_thread(log.read_text)
    changed = [key for key in before if before[key] != after[key]]
    diffs = "\n".join(
        "\n".join(difflib.unified_diff(_lines(before[key]), _lines(after[key]), key, key, lineterm=""))
        for key in changed
    )
    assert not changed, f"written over unchanged objects:\n{diffs}\n{text[-2000:]}"
    assert "Traceback" not in text, text[-3000:]
