"""`postmaster render`: the operator's outputs for manifests on disk, credentials redacted by default."""

from __future__ import annotations

from pathlib import Path

import pytest
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
