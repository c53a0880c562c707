"""`postmaster render`: the operator's outputs for manifests on disk, credentials redacted by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
import yaml

from postmaster.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:  # type: ignore[type-arg]
    code = main(["render", *args])
    out, err = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out) if d], err


def test_renders_every_example_provider_with_credentials_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    code, docs, _ = run(capsys, str(EXAMPLES))
    assert code == 0
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Secret", "sendgrid-smtp") in names
    assert ("ConfigMap", "sendgrid-relay") in names
    smtp = next(d for d in docs if d["metadata"]["name"] == "sendgrid-smtp")
    assert smtp["stringData"]["SMTP_USERNAME"] == "apikey"
    assert smtp["stringData"]["SMTP_PASSWORD"] == "<redacted>"
    relay = next(d for d in docs if d["metadata"]["name"] == "sendgrid-relay" and d["kind"] == "ConfigMap")
    assert "/^[^@]*@([^@]+\\.)?example\\.com$/ DUNNO" in relay["data"]["send-internal-only.pcre"]
    assert "SG.placeholder-api-key" not in yaml.safe_dump_all(docs)


def test_show_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    code, docs, _ = run(capsys, "--show-secrets", str(EXAMPLES / "sendgrid.yaml"))
    assert code == 0
    relay = next(d for d in docs if d["metadata"]["name"] == "sendgrid-relay" and d["kind"] == "Secret")
    assert relay["stringData"]["sasl_passwd"] == "[smtp.sendgrid.net]:587 apikey:SG.placeholder-api-key\n"


def test_a_missing_secret_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    manifest = tmp_path / "p.yaml"
    manifest.write_text(
        "apiVersion: postmaster.dev/v1alpha1\nkind: MailProvider\nmetadata: {name: p, namespace: ns}\n"
        "spec: {preset: gmail, from: {address: a@example.com}, auth: {credentialsSecretRef: {name: nope}}}\n"
    )
    code, _, err = run(capsys, str(manifest))
    assert code == 1
    assert "MailProvider ns/p spec.auth.credentialsSecretRef.name" in err
    assert "'nope' does not exist" in err


def test_the_ca_bundle_reaches_the_relay_as_the_operator_puts_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same gathering as the operator's: spec.caBundleRef is read from a ConfigMap among the manifests."""
    pem = trustme.CA().cert_pem.bytes().decode()
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "private-ca"}, "data": {"ca.crt": pem}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}, "stringData": {"password": "pw"}},
        {
            "apiVersion": "postmaster.dev/v1alpha1",
            "kind": "MailProvider",
            "metadata": {"name": "internal"},
            "spec": {
                "host": "smtp.internal.example",
                "port": 587,
                "from": {"address": "a@example.com"},
                "auth": {"credentialsSecretRef": {"name": "c"}, "username": "u"},
                "caBundleRef": {"name": "private-ca"},
            },
        },
    ]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    code, out, _ = run(capsys, str(tmp_path / "all.yaml"))
    assert code == 0
    relay = next(d for d in out if d["kind"] == "ConfigMap")
    assert relay["data"]["ca.crt"] == pem
    assert "smtp_tls_CAfile = /etc/postfix/postmaster/ca.crt" in relay["data"]["main.cf"]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs[1:]))  # without the ConfigMap: named, as in status
    code, _, err = run(capsys, str(tmp_path / "all.yaml"))
    assert code == 1
    assert "spec.caBundleRef" in err
    assert "private-ca" in err
