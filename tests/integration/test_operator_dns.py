"""SendingDomain DNS readiness end to end: the operator against a real API server and a real NSD.

Zones use 1-second TTLs so the operator's shared cache lets changes through quickly; domains check every
2 seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from postmaster.checks.dkim import generate_key, split_txt
from tests.fixtures.dns import NsdServer, free_port
from tests.fixtures.operator import Cluster, OperatorHandle, wait_for

pytestmark = pytest.mark.integration
MP, SD = "mailproviders", "sendingdomains"
SENDER_IP = "192.0.2.10"


def txt(value: str) -> str:
    return " ".join('"' + s.replace('"', '\\"') + '"' for s in split_txt(value))


def zone_records(spf: str | None, dmarc: str | None, dkim: dict[str, str] | None = None) -> str:
    lines = []
    if spf:
        lines.append(f"@ IN TXT {txt(spf)}")
    if dmarc:
        lines.append(f"_dmarc IN TXT {txt(dmarc)}")
    for selector, value in (dkim or {}).items():
        lines.append(f"{selector}._domainkey IN TXT {txt(value)}")
    return "\n".join(lines)


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorHandle, nsd: NsdServer) -> Cluster:
    if "test" not in nsd.zones:
        # The parent zone, so that DMARC's tree walk above the domain gets NXDOMAIN, as from any resolver,
        # instead of REFUSED from an authoritative server that does not serve "test".
        nsd.zone("test", "", ttl=1, negative_ttl=1)
    operator.remember_secret("custom-relay-password-41")
    cluster.apply_secret("creds", {"username": "relay", "password": "custom-relay-password-41"})
    spec = {
        "host": "mail.example.net",
        "port": 587,
        "from": {"address": "app@example.net"},
        "auth": {"credentialsSecretRef": {"name": "creds"}},
        "probe": {"enabled": False},
    }
    cluster.create(MP, "relay", spec)
    return cluster


def domain_spec(domain: str, nameserver: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "domain": domain,
        "providerRef": {"name": "relay"},
        "spf": {"ip4": [SENDER_IP]},
        "dmarc": {"minimumPolicy": "none"},
        "dns": {"nameservers": [nameserver]},
        "checkInterval": "2s",
    }
    spec.update(extra)
    return spec


def status(ns: Cluster, name: str) -> dict[str, Any]:
    return ns.get(SD, name).get("status") or {}


def test_records_dkim_generation_stale_key_and_readiness(ns: Cluster, nsd: NsdServer) -> None:
    domain = f"{ns.ns}.test"
    nsd.zone(domain, zone_records(f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none"), ttl=1, negative_ttl=1)
    ns.create(SD, "site", domain_spec(domain, nsd.nameserver))

    ns.wait_condition(SD, "site", "SPFReady", "True", "Ready", timeout=30)
    ns.wait_condition(SD, "site", "DMARCReady", "True", timeout=30)
    missing = ns.wait_condition(SD, "site", "DKIMReady", "False", "RecordMissing", timeout=30)
    dkim = status(ns, "site")["dkim"]
    selector = dkim["pendingSelector"]
    assert dkim["managedBy"] == "operator"
    assert dkim["secret"] == "site-dkim"
    assert selector in missing["message"]
    assert "waiting" in dkim

    # The key is in an owned Secret; status.records carries the exact TXT record to publish.
    secret = ns.core.read_namespaced_secret("site-dkim", ns.ns)
    assert f"{selector}.private" in (secret.data or {})
    assert secret.metadata.owner_references[0].kind == "SendingDomain"
    records = {(r["name"], r["type"]): r for r in status(ns, "site")["records"]}
    record = records[(f"{selector}._domainkey.{domain}", "TXT")]
    assert record["value"].startswith("v=DKIM1; k=rsa; p=")
    assert record["published"] is False
    assert records[(domain, "TXT")]["published"] is True
    assert records[(f"_dmarc.{domain}", "TXT")]["published"] is True
    assert ns.condition(SD, "site", "Ready")["status"] == "False"  # type: ignore[index]

    # A stale key under the selector: KeyMismatch, naming the selector.
    stale = generate_key("rsa").txt_value
    nsd.zone(domain, zone_records(f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none", {selector: stale}), ttl=1,
             negative_ttl=1)  # fmt: skip
    mismatch = ns.wait_condition(SD, "site", "DKIMReady", "False", "KeyMismatch", timeout=30)
    assert selector in mismatch["message"]

    # The right key: DKIM ready, the key becomes active, the domain Ready.
    nsd.zone(
        domain,
        zone_records(f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none", {selector: record["value"]}),
        ttl=1,
        negative_ttl=1,
    )
    ns.wait_condition(SD, "site", "DKIMReady", "True", timeout=30)
    ready = ns.wait_condition(SD, "site", "Ready", "True", timeout=30)
    assert "status.records" in ready["message"]
    wait_for(lambda: status(ns, "site")["dkim"].get("activeSelector") == selector, what="key activated")
    assert all(r.get("published") for r in status(ns, "site")["records"])


def test_broken_spf_is_false_with_the_record_to_publish(ns: Cluster, nsd: NsdServer) -> None:
    domain = f"{ns.ns}.test"
    nsd.zone(domain, zone_records("v=spf1 ip4:198.51.100.1 +all", "v=DMARC1; p=none"), ttl=1, negative_ttl=1)
    ns.create(SD, "open", domain_spec(domain, nsd.nameserver))
    cond = wait_for(
        lambda: (c := ns.condition(SD, "open", "SPFReady")) and c["status"] == "False" and c,
        timeout=30,
        what="SPFReady False",
    )
    assert cond["reason"] in ("PermissiveAll", "ProviderNotAuthorized")
    spf = next(r for r in status(ns, "open")["records"] if r["name"] == domain)
    assert SENDER_IP in spf["value"]
    assert spf["published"] is False


def test_dns_server_that_stops_answering_is_unknown_and_recovers(ns: Cluster, tmp_path: Path) -> None:
    domain = f"{ns.ns}.test"
    port = free_port()
    server = NsdServer(tmp_path / "nsd", port=port)
    zones = {domain: zone_records(f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none"), "test": ""}
    server.preload(zones, ttl=1, negative_ttl=1)
    server.start()
    try:
        ns.create(
            SD, "flaky", domain_spec(domain, server.nameserver, dkim={"managedBy": "provider", "selectors": ["s1"]})
        )
        ns.wait_condition(SD, "flaky", "SPFReady", "True", timeout=30)
        server.stop()
        timeout = ns.wait_condition(SD, "flaky", "SPFReady", "Unknown", "DNSTimeout", timeout=45)
        assert "127.0.0.1" in timeout["message"] or "time" in timeout["message"].lower()
        for type_ in ("SPFReady", "DMARCReady", "Ready"):
            assert ns.condition(SD, "flaky", type_)["status"] != "False", type_  # type: ignore[index]
        server.start()
        ns.wait_condition(SD, "flaky", "SPFReady", "True", timeout=60)
    finally:
        server.stop()


def _dnsendpoint_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "dnsendpoints.externaldns.k8s.io",
            # k8s.io groups need this; external-dns's own CRD carries the same annotation
            "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/external-dns/pull/2007"},
        },
        "spec": {
            "group": "externaldns.k8s.io",
            "names": {
                "kind": "DNSEndpoint",
                "plural": "dnsendpoints",
                "singular": "dnsendpoint",
                "listKind": "DNSEndpointList",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def test_external_dns_handoff(ns: Cluster, nsd: NsdServer, kube_api: kubernetes.client.ApiClient) -> None:
    ext: Any = kubernetes.client.ApiextensionsV1Api(kube_api)
    name = "dnsendpoints.externaldns.k8s.io"
    if _crd_exists(ext, name):
        ext.delete_custom_resource_definition(name)
    wait_for(lambda: not _crd_exists(ext, name), timeout=30, what="DNSEndpoint CRD gone")

    domain = f"{ns.ns}.test"
    nsd.zone(domain, zone_records(f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none"), ttl=1, negative_ttl=1)
    ns.create(SD, "pub", domain_spec(domain, nsd.nameserver, publish={"externalDNS": True}))
    missing = ns.wait_condition(SD, "pub", "DNSPublished", "False", "ExternalDNSNotInstalled", timeout=30)
    assert "external-dns" in missing["message"]

    ext.create_custom_resource_definition(_dnsendpoint_crd())
    wait_for(lambda: _crd_exists(ext, name), timeout=30, what="DNSEndpoint CRD")
    time.sleep(1)
    ns.patch_spec(SD, "pub", {"checkInterval": "3s"})  # a change makes the operator look again at once
    ns.wait_condition(SD, "pub", "DNSPublished", "True", "DNSEndpointWritten", timeout=30)
    endpoint = ns.custom.get_namespaced_custom_object(
        "externaldns.k8s.io", "v1alpha1", ns.ns, "dnsendpoints", "pub-records"
    )
    names = {(e["dnsName"], e["recordType"]) for e in endpoint["spec"]["endpoints"]}
    assert (domain, "TXT") in names
    assert (f"_dmarc.{domain}", "TXT") in names
    assert endpoint["metadata"]["ownerReferences"][0]["kind"] == "SendingDomain"
    assert status(ns, "pub")["dnsEndpoint"] == "pub-records"


def _crd_exists(ext: Any, name: str) -> bool:
    try:
        crd = ext.read_custom_resource_definition(name)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def _record_value(ns: Cluster, name: str, selector: str) -> str:
    def find() -> str | None:
        for record in status(ns, name).get("records", []):
            if record["name"].startswith(f"{selector}._domainkey."):
                return str(record["value"])
        return None

    return wait_for(find, timeout=30, what=f"the TXT record of {selector} in status.records")


def test_dkim_rotation_publishes_switches_and_retires(ns: Cluster, nsd: NsdServer) -> None:
    """rotateEvery and gracePeriod of seconds, so the whole M3AAWG cycle runs while the test waits."""
    domain = f"{ns.ns}.test"
    base = (f"v=spf1 ip4:{SENDER_IP} ~all", "v=DMARC1; p=none")
    nsd.zone(domain, zone_records(*base), ttl=1, negative_ttl=1)
    spec = domain_spec(domain, nsd.nameserver, dkim={"rotateEvery": "4s", "gracePeriod": "4s", "keyType": "ed25519"})
    spec["checkInterval"] = "1s"
    ns.create(SD, "rot", spec)

    first = wait_for(lambda: status(ns, "rot").get("dkim", {}).get("pendingSelector"), timeout=30, what="first key")
    first_value = _record_value(ns, "rot", first)
    assert "k=ed25519" in first_value
    nsd.zone(domain, zone_records(*base, {first: first_value}), ttl=1, negative_ttl=1)
    wait_for(lambda: status(ns, "rot")["dkim"].get("activeSelector") == first, timeout=30, what="first key active")

    # rotateEvery passes: the next key is generated and published first, the old one still signs.
    second = wait_for(
        lambda: (s := status(ns, "rot")["dkim"].get("pendingSelector")) and s != first and s,
        timeout=30,
        what="next key",
    )
    dkim = status(ns, "rot")["dkim"]
    assert dkim["activeSelector"] == first
    assert second in dkim["waiting"]
    assert second > first
    assert ns.condition(SD, "rot", "DKIMReady")["status"] == "True"  # type: ignore[index]

    # DNS serves the next key: it takes over, the old one keeps being published for the grace period.
    second_value = _record_value(ns, "rot", second)
    nsd.zone(domain, zone_records(*base, {first: first_value, second: second_value}), ttl=1, negative_ttl=1)
    wait_for(lambda: status(ns, "rot")["dkim"].get("activeSelector") == second, timeout=30, what="switch")
    assert first in status(ns, "rot")["dkim"]["retiringSelectors"]

    # After the grace period the old key leaves the Secret.
    def retired() -> bool:
        data = ns.core.read_namespaced_secret("rot-dkim", ns.ns).data or {}
        return f"{first}.private" not in data and f"{second}.private" in data

    wait_for(retired, timeout=30, what="old key retired")
    wait_for(lambda: first not in status(ns, "rot")["dkim"]["selectors"], timeout=10, what="status follows")


def test_a_custom_servers_addresses_are_what_spf_must_authorise(ns: Cluster, nsd: NsdServer) -> None:
    """The provider is a custom host (mail.example.net) without an SPF include: its addresses are."""
    nsd.zone("example.net", "mail IN A 192.0.2.25", ttl=1, negative_ttl=1)
    domain = f"{ns.ns}.test"
    nsd.zone(domain, zone_records("v=spf1 ip4:198.51.100.7 -all", "v=DMARC1; p=none"), ttl=1, negative_ttl=1)
    spec = domain_spec(domain, nsd.nameserver)
    spec["spf"] = {"all": "-all"}
    ns.create(SD, "custom", spec)
    refused = ns.wait_condition(SD, "custom", "SPFReady", "False", "ProviderNotAuthorized", timeout=30)
    assert "192.0.2.25" in refused["message"]
    spf = next(r for r in status(ns, "custom")["records"] if r["name"] == domain)
    assert "ip4:192.0.2.25" in spf["value"]
    nsd.zone(domain, zone_records(spf["value"], "v=DMARC1; p=none"), ttl=1, negative_ttl=1)
    ns.wait_condition(SD, "custom", "SPFReady", "True", timeout=30)
