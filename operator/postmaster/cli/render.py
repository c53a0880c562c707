"""`postmaster render FILE...`: what the operator would write for these manifests, without a cluster.

Reads MailProviders, RestrictionPolicies, SendingDomains and the Secrets they reference
from YAML files (as `kubectl apply -f` would take them) and prints the Secret `<provider>-smtp` and the
ConfigMap and Secret `<provider>-relay` for each MailProvider. Secrets are shown as stringData, with the
keys that carry a credential printed as `<redacted>` unless --show-secrets is given. For reviewing a
change before it is merged (GitOps), or debugging.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from postmaster.api.restrictionpolicy import RestrictionPolicySpec
from postmaster.api.sendingdomain import SendingDomainSpec
from postmaster.cli.install import load_documents
from postmaster.gather import gather_provider, parse_provider_spec, provider_outputs
from postmaster.render.access import NamedPolicy
from postmaster.render.ownership import Owner
from postmaster.resolution import SpecError
from postmaster.statuses import spec_error_from_validation

REDACTED = "<redacted>"
SECRET_KEYS = ("SMTP_PASSWORD", "SMTP_URL", "sasl_passwd")


def _secret_data(doc: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (doc.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return data


def _ref(doc: dict[str, Any]) -> str | None:
    return ((doc.get("spec") or {}).get("providerRef") or {}).get("name")


def _namespace(doc: dict[str, Any]) -> str:
    return str(doc["metadata"].get("namespace", "default"))


class ManifestReferences:
    """`References` read from the manifests given on the command line, in one namespace."""

    def __init__(self, by_kind: dict[str, list[dict[str, Any]]], namespace: str) -> None:
        self._secrets = {
            s["metadata"]["name"]: _secret_data(s) for s in by_kind.get("Secret", []) if _namespace(s) == namespace
        }
        self._configmaps = {
            c["metadata"]["name"]: {k: str(v) for k, v in (c.get("data") or {}).items()}
            for c in by_kind.get("ConfigMap", [])
            if _namespace(c) == namespace
        }

    async def secret(self, name: str) -> dict[str, str] | None:
        return self._secrets.get(name)

    async def configmap(self, name: str) -> dict[str, str] | None:
        return self._configmaps.get(name)


async def _render_provider(doc: dict[str, Any], by_kind: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    meta = doc["metadata"]
    namespace, name = _namespace(doc), meta["name"]
    where = f"MailProvider {namespace}/{name}"
    members = [d for d in by_kind.get("RestrictionPolicy", []) + by_kind.get("SendingDomain", []) if _ref(d) == name]
    members = [d for d in members if _namespace(d) == namespace]
    policies, domains = [], []
    for doc_ in members:
        model = RestrictionPolicySpec if doc_.get("kind") == "RestrictionPolicy" else SendingDomainSpec
        try:
            parsed = model.model_validate(doc_.get("spec") or {})
        except ValidationError as exc:
            err = spec_error_from_validation(exc)
            raise SpecError(
                f"{doc_.get('kind')} {namespace}/{doc_['metadata']['name']} {err.field_path}", err.message
            ) from None
        if isinstance(parsed, RestrictionPolicySpec):
            policies.append(NamedPolicy(namespace, doc_["metadata"]["name"], parsed))
        else:
            domains.append(parsed.domain)
    owner = Owner(kind="MailProvider", name=name, namespace=namespace, uid=meta.get("uid", "<uid>"))
    try:
        spec = parse_provider_spec(doc.get("spec"))
    except SpecError as exc:
        raise SpecError(f"{where} {exc.field_path}", exc.message, exc.reason) from None
    refs = ManifestReferences(by_kind, namespace)
    inputs = await gather_provider(owner, spec, refs, policies=policies, sending_domains=domains)
    if inputs.error is not None:
        raise SpecError(f"{where} {inputs.error.field_path}", inputs.error.message, inputs.error.reason)
    return provider_outputs(inputs)


def render_documents(docs: list[dict[str, Any]], *, show_secrets: bool = False) -> list[dict[str, Any]]:
    """The objects the operator would write. Raises SpecError naming the object and field."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc.get("kind", ""), []).append(doc)
    out: list[dict[str, Any]] = []
    for doc in by_kind.get("MailProvider", []):
        rendered = asyncio.run(_render_provider(doc, by_kind))
        for obj in rendered:
            if obj["kind"] == "Secret":  # readable: stringData, with the credential-bearing keys redacted
                decoded = {k: base64.b64decode(v).decode() for k, v in obj.pop("data").items()}
                hide = () if show_secrets else SECRET_KEYS
                obj["stringData"] = {k: REDACTED if k in hide else v for k, v in decoded.items()}
        out += rendered
    return out


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (main.cf, the tables) as `|` blocks, the way people read and write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def _cmd_render(args: argparse.Namespace) -> int:
    docs = load_documents([Path(p) for p in args.files])
    try:
        objects = render_documents(docs, show_secrets=args.show_secrets)
    except SpecError as exc:
        print(f"postmaster render: {exc.field_path}: {exc.message}", file=sys.stderr)
        return 1
    if not objects:
        print("postmaster render: no MailProvider in the given files", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, width=120))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser(
        "render",
        help="print what the operator would write for these manifests (no cluster needed)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render.add_argument("files", nargs="+", help="YAML files or directories, e.g. examples/")
    render.add_argument("--show-secrets", action="store_true", help="print Secret values instead of <redacted>")
    render.set_defaults(func=_cmd_render)
