"""Every example manifest is valid for the models and resolves to a usable endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from postmaster.api.mailprovider import MailProviderSpec
from postmaster.api.resources import RESOURCES
from postmaster.cli.install import load_documents
from postmaster.resolution import resolve_endpoint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = load_documents([EXAMPLES])
MODELS = {r.kind: r.spec_model for r in RESOURCES}


def test_the_seed_scenarios_are_all_there() -> None:
    providers = {d["metadata"]["name"]: d["spec"] for d in DOCS if d["kind"] == "MailProvider"}
    presets = {spec.get("preset", "custom") for spec in providers.values()}
    assert {"gmail", "office365", "sendgrid", "mailgun", "ses", "custom"} <= presets
    assert any(spec.get("port") == 2525 for spec in providers.values())
    assert any(spec.get("region") for spec in providers.values() if spec.get("preset") == "ses")
    policies = [d["spec"] for d in DOCS if d["kind"] == "RestrictionPolicy"]
    assert any(
        p["send"]["mode"] == "LocalDomainAndSubdomains" and "*@partner.example" in p["send"]["exceptions"]
        for p in policies
    )
    assert any(d["kind"] == "SendingDomain" for d in DOCS)


@pytest.mark.parametrize("doc", [d for d in DOCS if d["kind"] in MODELS], ids=lambda d: d["metadata"]["name"])
def test_example_specs_validate(doc: dict) -> None:  # type: ignore[type-arg]
    spec = MODELS[doc["kind"]].model_validate(doc["spec"])
    if isinstance(spec, MailProviderSpec):
        assert resolve_endpoint(spec).host


def test_every_referenced_secret_is_in_the_examples() -> None:
    secrets = {d["metadata"]["name"] for d in DOCS if d["kind"] == "Secret"}
    for doc in DOCS:
        if doc["kind"] == "MailProvider":
            auth = doc["spec"].get("auth", {})
            for ref in (auth.get("credentialsSecretRef"), (auth.get("oauth2", {}).get("clientCredentials") or {}).get(
                "clientSecretRef"
            )):  # fmt: skip
                if ref:
                    assert ref["name"] in secrets, doc["metadata"]["name"]
