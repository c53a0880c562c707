"""The operator against a real API server, driven through the Kubernetes API as a user would.

The tests in this module share one in-process operator (see tests/fixtures/operator.py). The last one
sweeps logs, events, statuses and ConfigMaps of the whole run for the credential values used.
"""

from __future__ import annotations

import json
import time
from typing import Any

import kubernetes
import pytest

from tests.fixtures.operator import Cluster, OperatorHandle, wait_for

pytestmark = pytest.mark.integration

MP, SD, RP = "mailproviders", "sendingdomains", "restrictionpolicies"
NAMESPACES_SEEN: list[str] = []


def gmail_spec(secret: str = "gmail-credentials") -> dict[str, Any]:  # noqa: S107  (a Secret name)
    return {
        "preset": "gmail",
        "from": {"address": "alerts@example.com", "displayName": "Alerts"},
        "auth": {"credentialsSecretRef": {"name": secret}},
        "probe": {"enabled": False},  # smtp.gmail.com is out of reach here; test_operator_probe.py probes for real
    }


@pytest.fixture
def ns(cluster: Cluster, operator: OperatorHandle) -> Cluster:
    NAMESPACES_SEEN.append(cluster.ns)
    return cluster


# --- admission ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("host", "http://smtp.example.com/", "spec.host"),
        ("port", 70000, "spec.port"),
        ("tls", "ssl", 'spec.tls: Unsupported value: "ssl"'),
    ],
)
def test_api_server_rejects_bad_fields_naming_them(ns: Cluster, field: str, value: Any, expected: str) -> None:
    spec = {"host": "smtp.example.com", "from": {"address": "a@example.com"}, field: value}
    with pytest.raises(kubernetes.client.ApiException) as info:
        ns.create(MP, "bad", spec)
    assert info.value.status == 422
    assert expected in json.loads(info.value.body)["message"]


# --- MailProvider outputs, rotation, deletion -----------------------------------------------------------


def test_provider_writes_secret_and_relay_and_follows_rotation(ns: Cluster, operator: OperatorHandle) -> None:
    first = operator.remember_secret("first-app-password-1")
    ns.apply_secret("gmail-credentials", {"password": first})
    ns.create(MP, "gmail", gmail_spec())
    ready = ns.wait_condition(MP, "gmail", "Ready", "True")
    assert "gmail-smtp" in ready["message"]
    smtp = ns.secret("gmail-smtp")
    assert smtp is not None
    assert smtp["SMTP_HOST"] == "smtp.gmail.com"
    assert smtp["SMTP_PASSWORD"] == first
    assert smtp["SMTP_USERNAME"] == "alerts@example.com"
    relay = ns.configmap("gmail-relay")
    assert relay is not None
    assert "relayhost = [smtp.gmail.com]:587" in relay["main.cf"]
    relay_secret = ns.secret("gmail-relay")
    assert relay_secret == {"sasl_passwd": f"[smtp.gmail.com]:587 alerts@example.com:{first}\n"}
    status = ns.get(MP, "gmail")["status"]
    assert status["endpoint"] == {"host": "smtp.gmail.com", "port": 587, "tls": "starttls", "authMethod": "plain"}
    assert status["observedGeneration"] == 1

    # Rotate the credentials: the output follows within 5 seconds, without touching the MailProvider.
    second = operator.remember_secret("second-app-password-2")
    started = time.monotonic()
    ns.apply_secret("gmail-credentials", {"password": second})
    wait_for(lambda: (ns.secret("gmail-smtp") or {}).get("SMTP_PASSWORD") == second, timeout=5, what="rotation")
    elapsed = time.monotonic() - started
    assert elapsed < 5
    wait_for(lambda: second in (ns.secret("gmail-relay") or {}).get("sasl_passwd", ""), timeout=5, what="relay")

    # Delete: owner references and the garbage collector remove everything it wrote.
    ns.delete(MP, "gmail")
    wait_for(lambda: ns.secret("gmail-smtp") is None, timeout=30, what="gmail-smtp deleted")
    wait_for(lambda: ns.configmap("gmail-relay") is None, timeout=30, what="gmail-relay ConfigMap deleted")
    wait_for(lambda: ns.secret("gmail-relay") is None, timeout=30, what="gmail-relay Secret deleted")
    assert ns.secret("gmail-credentials") is not None  # the user's Secret is not ours to delete


def test_missing_secret_stalls_then_recovers_by_itself(ns: Cluster, operator: OperatorHandle) -> None:
    ns.create(MP, "gmail", gmail_spec("not-yet"))
    ready = ns.wait_condition(MP, "gmail", "Ready", "False", "SecretNotFound")
    assert "not-yet" in ready["message"]
    stalled = ns.wait_condition(MP, "gmail", "Stalled", "True", "SecretNotFound")
    assert "spec.auth.credentialsSecretRef.name" in stalled["message"]
    assert ns.condition(MP, "gmail", "CredentialsResolved")["status"] == "False"  # type: ignore[index]
    generation = ns.get(MP, "gmail")["metadata"]["generation"]

    ns.apply_secret("not-yet", {"password": operator.remember_secret("late-password-3")})
    ns.wait_condition(MP, "gmail", "Ready", "True")
    assert ns.condition(MP, "gmail", "Stalled")["status"] == "False"  # type: ignore[index]
    assert ns.get(MP, "gmail")["metadata"]["generation"] == generation
    # The first verdict needed a person (a Warning); the recovery is told too. The Event follows the status write.
    wait_for(lambda: {"SecretNotFound", "Ready"} <= {e.reason for e in ns.events()}, what="both Events")


def test_missing_secret_key_names_the_key(ns: Cluster, operator: OperatorHandle) -> None:
    ns.apply_secret("creds", {"pass": operator.remember_secret("wrong-key-password-4")})
    ns.create(MP, "gmail", gmail_spec("creds"))
    ready = ns.wait_condition(MP, "gmail", "Ready", "False", "SecretKeyNotFound")
    assert "'password'" in ready["message"]
    assert "keys present: pass" in ready["message"]


def test_preset_needing_a_region_stalls_with_invalid_spec(ns: Cluster, operator: OperatorHandle) -> None:
    ns.apply_secret("ses", {"username": "AKIAEXAMPLE", "password": operator.remember_secret("ses-password-5")})
    spec = {
        "preset": "ses",
        "from": {"address": "a@example.com"},
        "auth": {"credentialsSecretRef": {"name": "ses"}},
        "probe": {"enabled": False},
    }
    ns.create(MP, "ses", spec)
    stalled = ns.wait_condition(MP, "ses", "Stalled", "True", "InvalidSpec")
    assert stalled["message"].startswith("spec.region:")
    assert ns.condition(MP, "ses", "Ready")["status"] == "False"  # type: ignore[index]
    assert ns.secret("ses-smtp") is None

    ns.patch_spec(MP, "ses", {"region": "eu-west-1"})
    ns.wait_condition(MP, "ses", "Ready", "True")
    assert (ns.secret("ses-smtp") or {})["SMTP_HOST"] == "email-smtp.eu-west-1.amazonaws.com"
    assert ns.get(MP, "ses")["status"]["observedGeneration"] == 2


def test_nothing_changed_writes_nothing(ns: Cluster, operator: OperatorHandle) -> None:
    ns.apply_secret("gmail-credentials", {"password": operator.remember_secret("steady-password-6")})
    ns.create(MP, "gmail", gmail_spec())
    ns.wait_condition(MP, "gmail", "Ready", "True")
    time.sleep(1.5)  # let kopf finish its own bookkeeping of the creation
    before = ns.get(MP, "gmail")["metadata"]["resourceVersion"]
    smtp_before = ns.core.read_namespaced_secret("gmail-smtp", ns.ns).metadata.resource_version

    # Re-apply the unchanged spec, and make the operator reconcile by touching the Secret's labels.
    ns.patch_spec(MP, "gmail", gmail_spec())
    ns.core.patch_namespaced_secret("gmail-credentials", ns.ns, {"metadata": {"labels": {"touched": "yes"}}})
    time.sleep(2.0)
    assert ns.get(MP, "gmail")["metadata"]["resourceVersion"] == before
    assert ns.core.read_namespaced_secret("gmail-smtp", ns.ns).metadata.resource_version == smtp_before


def test_outputs_deleted_or_edited_by_hand_are_restored(ns: Cluster, operator: OperatorHandle) -> None:
    password = operator.remember_secret("restore-password-10")
    ns.apply_secret("gmail-credentials", {"password": password})
    ns.create(MP, "gmail", gmail_spec())
    ns.wait_condition(MP, "gmail", "Ready", "True")
    wait_for(lambda: ns.secret("gmail-smtp"), what="gmail-smtp")
    ns.core.delete_namespaced_secret("gmail-smtp", ns.ns)
    wait_for(lambda: (ns.secret("gmail-smtp") or {}).get("SMTP_PASSWORD") == password, timeout=10, what="recreated")
    ns.core.patch_namespaced_config_map("gmail-relay", ns.ns, {"data": {"main.cf": "relayhost = [evil.example]:25\n"}})
    wait_for(
        lambda: "relayhost = [smtp.gmail.com]:587" in (ns.configmap("gmail-relay") or {}).get("main.cf", ""),
        timeout=10,
        what="relay ConfigMap restored",
    )


def test_a_changed_ca_bundle_reaches_the_relay(ns: Cluster, operator: OperatorHandle) -> None:
    import trustme

    first, second = (trustme.CA().cert_pem.bytes().decode() for _ in range(2))
    ns.apply_secret("creds", {"password": operator.remember_secret("ca-password-11")})
    ns.core.create_namespaced_config_map(ns.ns, {"metadata": {"name": "private-ca"}, "data": {"ca.crt": first}})
    ns.create(MP, "internal", {**gmail_spec("creds"), "caBundleRef": {"name": "private-ca"}})
    wait_for(lambda: (ns.configmap("internal-relay") or {}).get("ca.crt", "").strip() == first.strip(), what="CA")
    ns.core.patch_namespaced_config_map("private-ca", ns.ns, {"data": {"ca.crt": second}})
    wait_for(
        lambda: (ns.configmap("internal-relay") or {}).get("ca.crt", "").strip() == second.strip(),
        timeout=5,
        what="the new CA in the relay",
    )
    ns.core.delete_namespaced_config_map("private-ca", ns.ns)
    stalled = ns.wait_condition(MP, "internal", "Stalled", "True", "CABundleNotFound")
    assert "private-ca" in stalled["message"]


# --- dependents -------------------------------------------------------------------------------------------


def test_dangling_provider_ref_clears_when_the_provider_appears(ns: Cluster, operator: OperatorHandle) -> None:
    ns.create(
        RP,
        "internal-only",
        {
            "providerRef": {"name": "gmail"},
            "localDomains": ["example.com"],
            "send": {"mode": "LocalDomainAndSubdomains", "exceptions": ["*@partner.example"]},
        },
    )
    ns.create(SD, "example-com", {"domain": "example.com", "providerRef": {"name": "gmail"}})
    ns.wait_condition(RP, "internal-only", "Ready", "False", "ProviderNotFound")
    ns.wait_condition(SD, "example-com", "ProviderResolved", "False", "ProviderNotFound")

    ns.apply_secret("gmail-credentials", {"password": operator.remember_secret("dependents-password-7")})
    ns.create(MP, "gmail", gmail_spec())
    ns.wait_condition(RP, "internal-only", "Ready", "True")
    ns.wait_condition(RP, "internal-only", "Rendered", "True", "RenderedIntoRelay")
    ns.wait_condition(SD, "example-com", "ProviderResolved", "True", "ProviderFound")
    relay = wait_for(lambda: ns.configmap("gmail-relay"), what="relay ConfigMap")
    assert "/^.*@partner\\.example$/ DUNNO" in relay["send-internal-only.pcre"]
    assert "check_recipient_access pcre:/etc/postfix/postmaster/send-internal-only.pcre" in relay["main.cf"]
    assert "/^[^@]*@example\\.com$/ DUNNO" in relay["sender-domains.pcre"]
    records = wait_for(lambda: ns.get(SD, "example-com")["status"].get("records"), what="records")
    spf = next(r for r in records if (r["name"], r["type"]) == ("example.com", "TXT"))
    assert "include:_spf.google.com" in spf["value"]

    # A deleted policy leaves the relay; a deleted provider leaves the dependents ProviderNotFound.
    ns.delete(RP, "internal-only")
    wait_for(lambda: "send-internal-only.pcre" not in (ns.configmap("gmail-relay") or {}), what="table removed")
    ns.delete(MP, "gmail")
    ns.wait_condition(SD, "example-com", "ProviderResolved", "False", "ProviderNotFound")


def test_moving_a_policy_to_another_provider_updates_both_relays(ns: Cluster, operator: OperatorHandle) -> None:
    ns.apply_secret("creds", {"password": operator.remember_secret("move-password-8")})
    ns.create(MP, "a", gmail_spec("creds"))
    ns.create(MP, "b", gmail_spec("creds"))
    ns.create(RP, "p", {"providerRef": {"name": "a"}, "localDomains": ["example.com"], "send": {"mode": "LocalDomain"}})
    wait_for(lambda: "send-p.pcre" in (ns.configmap("a-relay") or {}), what="policy in a-relay")
    ns.patch_spec(RP, "p", {"providerRef": {"name": "b"}})
    wait_for(lambda: "send-p.pcre" in (ns.configmap("b-relay") or {}), what="policy in b-relay")
    wait_for(lambda: "send-p.pcre" not in (ns.configmap("a-relay") or {}), what="policy gone from a-relay")


def test_kopf_bookkeeping_stays_under_postmaster_dev(ns: Cluster, operator: OperatorHandle) -> None:
    ns.apply_secret("creds", {"password": operator.remember_secret("bookkeeping-password-9")})
    ns.create(MP, "gmail", gmail_spec("creds"))
    ns.wait_condition(MP, "gmail", "Ready", "True")
    wait_for(lambda: ns.secret("gmail-smtp"), what="gmail-smtp")
    provider = ns.get(MP, "gmail")
    annotations = provider["metadata"].get("annotations") or {}
    assert not [k for k in annotations if "kopf" in k or k.startswith("operator.postmaster.dev/")], annotations
    assert not provider["metadata"].get("finalizers")
    for child in (
        ns.core.read_namespaced_secret("gmail-smtp", ns.ns),
        ns.core.read_namespaced_config_map("gmail-relay", ns.ns),
    ):
        keys = list((child.metadata.annotations or {}).keys()) + list((child.metadata.labels or {}).keys())
        assert not [k for k in keys if "kopf" in k], keys
