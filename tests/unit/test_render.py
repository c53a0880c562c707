"""Render functions: Secrets and relay ConfigMaps, with the access tables checked by Postfix itself.

`postmap -q` and `postconf -n` are Debian postfix's own tools: the tables and the main.cf fragment are
read by the same code that the relay runs, not by a re-implementation in the test.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from postmaster.api.mailprovider import MailProviderSpec
from postmaster.api.restrictionpolicy import RestrictionPolicySpec
from postmaster.render.access import NamedPolicy, wildcard_regex
from postmaster.render.ownership import Owner
from postmaster.render.relay import postfix_main_cf, relay_config_data, relay_config_map, relay_secret
from postmaster.render.smtp_secret import smtp_secret, smtp_url
from postmaster.resolution import Credentials, resolve_credentials, resolve_endpoint
from tests.fixtures.postfix import POSTCONF, postmap_query, require_postfix, write_config_dir

PASSWORD = "p@ss:w/rd with spaces"
OWNER = Owner(kind="MailProvider", name="gmail", namespace="team-a", uid="1234-5678")


def endpoint(**fields: Any):  # type: ignore[no-untyped-def]
    base: dict[str, Any] = {"from": {"address": "alerts@example.com"}, "auth": {"credentialsSecretRef": {"name": "c"}}}
    base.update(fields)
    spec = MailProviderSpec.model_validate(base)
    ep = resolve_endpoint(spec)
    return ep, resolve_credentials(
        spec, ep, {"password": PASSWORD, "username": "relay-user"} if "host" in fields else {"password": PASSWORD}
    )


def policy(name: str, **fields: Any) -> NamedPolicy:
    spec = RestrictionPolicySpec.model_validate(
        {"providerRef": {"name": "gmail"}, "localDomains": ["example.com"], **fields}
    )
    return NamedPolicy("team-a", name, spec)


def decode(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_smtp_secret_holds_what_applications_need() -> None:
    ep, creds = endpoint(preset="gmail", **{"from": {"address": "alerts@example.com", "displayName": "Alerts"}})
    secret = smtp_secret(OWNER, ep, creds)
    data = decode(secret["data"])
    assert data["SMTP_HOST"] == "smtp.gmail.com"
    assert data["SMTP_PORT"] == "587"
    assert data["SMTP_TLS"] == "starttls"
    assert data["SMTP_USERNAME"] == "alerts@example.com"
    assert data["SMTP_PASSWORD"] == PASSWORD
    assert data["SMTP_FROM_NAME"] == "Alerts"
    assert data["SMTP_URL"] == "smtp://alerts%40example.com:p%40ss%3Aw%2Frd%20with%20spaces@smtp.gmail.com:587"
    meta = secret["metadata"]
    assert meta["name"] == "gmail-smtp"
    assert meta["ownerReferences"][0] == {
        "apiVersion": "postmaster.dev/v1alpha1",
        "kind": "MailProvider",
        "name": "gmail",
        "uid": "1234-5678",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "postmaster"
    assert not any(k.startswith("kopf") for k in meta["labels"])


def test_implicit_tls_url_and_ipv6_host() -> None:
    ep, creds = endpoint(host="2001:db8::25", port=465)
    assert smtp_url(ep, creds).startswith("smtps://")
    assert "@[2001:db8::25]:465" in smtp_url(ep, creds)


def test_relay_secret_is_a_texthash_table() -> None:
    ep, creds = endpoint(preset="sendgrid")
    data = decode(relay_secret(OWNER, ep, creds)["data"])
    assert data["sasl_passwd"] == f"[smtp.sendgrid.net]:587 apikey:{PASSWORD}\n"


def test_config_map_carries_no_secret() -> None:
    ep, creds = endpoint(preset="gmail")
    cm = relay_config_map(OWNER, ep, policies=[policy("p")], sending_domains=["example.com"])
    assert creds is not None
    assert PASSWORD not in repr(cm)


@pytest.mark.parametrize(
    ("pattern", "address", "matches"),
    [
        ("*@partner.example", "bob@partner.example", True),
        ("*@partner.example", "bob@partner.example.evil", False),
        ("*@partner.example", "bob@sub.partner.example", False),
        ("partner.example", "bob@partner.example", True),
        ("*.partner.example", "bob@eu.partner.example", True),
        ("ops?@example.org", "ops1@example.org", True),
        ("ops?@example.org", "ops12@example.org", False),
        ("a+b@example.org", "a+b@example.org", True),
        ("a+b@example.org", "aab@example.org", False),
        ("a.b@example.org", "axb@example.org", False),
    ],
)
def test_wildcards(pattern: str, address: str, matches: bool) -> None:
    import re

    assert bool(re.search(wildcard_regex(pattern), address)) is matches


def test_main_cf_for_starttls_with_sasl_and_rate_limit() -> None:
    ep, _ = endpoint(preset="office365")
    text = postfix_main_cf(ep, policies=[], sending_domains=[])
    assert "relayhost = [smtp.office365.com]:587" in text
    assert "smtp_tls_security_level = secure" in text
    assert "smtp_sasl_auth_enable = yes" in text
    assert "smtp_destination_rate_delay = 2s" in text
    assert "smtp_tls_wrappermode" not in text


def test_main_cf_for_implicit_tls_without_verification() -> None:
    ep, _ = endpoint(host="smtp.example.com", port=465, tlsVerify=False)
    text = postfix_main_cf(ep, policies=[], sending_domains=[])
    assert "smtp_tls_wrappermode = yes" in text
    assert "smtp_tls_security_level = encrypt" in text


# --- the same files, read by Postfix -----------------------------------------------------------------


def _write_relay(tmp_path: Path, policies: list[NamedPolicy], domains: list[str]) -> Path:
    ep, _ = endpoint(preset="gmail")
    require_postfix()
    write_config_dir(tmp_path / "postfix-etc")  # for postmap -c: the machine's /etc/postfix is never read
    conf = tmp_path / "postmaster"
    conf.mkdir()
    for key, value in relay_config_data(ep, policies=policies, sending_domains=domains).items():
        (conf / key).write_text(value)
    return conf


def lookup(table: Path, key: str) -> str:
    out = postmap_query(table.parent.parent / "postfix-etc", f"pcre:{table}", key)
    assert out.returncode in (0, 1), out.stderr
    assert "warning" not in out.stderr, out.stderr
    assert "fatal" not in out.stderr, out.stderr
    return out.stdout.strip()


def test_local_domain_and_subdomains_except_partner(tmp_path: Path) -> None:
    """The issue's example: local domain and subdomains, except *@partner.example."""
    conf = _write_relay(
        tmp_path,
        [policy("internal", send={"mode": "LocalDomainAndSubdomains", "exceptions": ["*@partner.example"]})],
        [],
    )
    table = conf / "send-internal.pcre"
    assert lookup(table, "alice@example.com") == "DUNNO"
    assert lookup(table, "alice@EU.Example.com") == "DUNNO"
    assert lookup(table, "bob@partner.example") == "DUNNO"
    assert lookup(table, "eve@evil.example") == "550 5.7.1 Permission denied"
    assert lookup(table, "eve@notexample.com") == "550 5.7.1 Permission denied"
    assert lookup(table, "eve@example.com.evil.net") == "550 5.7.1 Permission denied"


def test_local_domain_only(tmp_path: Path) -> None:
    conf = _write_relay(tmp_path, [policy("strict", send={"mode": "LocalDomain"})], [])
    table = conf / "send-strict.pcre"
    assert lookup(table, "alice@example.com") == "DUNNO"
    assert lookup(table, "alice@eu.example.com").startswith("550 5.7.1")


def test_allow_all_with_exceptions_and_deny_all(tmp_path: Path) -> None:
    conf = _write_relay(
        tmp_path,
        [
            policy("open", send={"mode": "AllowAll", "exceptions": ["*@competitor.example"]}),
            policy("closed", send={"mode": "DenyAll", "exceptions": ["ops?@example.com"]}, rejectMessage="Costs $5"),
        ],
        [],
    )
    assert lookup(conf / "send-open.pcre", "x@anything.example") == ""
    assert lookup(conf / "send-open.pcre", "x@competitor.example") == "550 5.7.1 Permission denied"
    assert lookup(conf / "send-closed.pcre", "ops1@example.com") == "DUNNO"
    assert lookup(conf / "send-closed.pcre", "ops12@example.com") == "550 5.7.1 Costs $5"


def test_suppression_and_sender_domains(tmp_path: Path) -> None:
    conf = _write_relay(tmp_path, [policy("p", suppressed=["bounced@example.com"])], ["example.com"])
    assert lookup(conf / "suppressed.pcre", "bounced@example.com") == "550 5.1.1 Recipient suppressed"
    assert lookup(conf / "suppressed.pcre", "fine@example.com") == ""
    assert lookup(conf / "sender-domains.pcre", "app@example.com") == "DUNNO"
    assert lookup(conf / "sender-domains.pcre", "<>") == "DUNNO"
    assert lookup(conf / "sender-domains.pcre", "app@other.example").startswith("550 5.7.1")


def test_regex_metacharacters_cannot_escape_the_pattern(tmp_path: Path) -> None:
    conf = _write_relay(tmp_path, [policy("p", send={"mode": "DenyAll", "exceptions": ["a/b|c$@example.com"]})], [])
    table = conf / "send-p.pcre"
    assert lookup(table, "a/b|c$@example.com") == "DUNNO"
    assert lookup(table, "c$@example.com").startswith("550")


def test_main_cf_is_accepted_by_postconf(tmp_path: Path) -> None:
    conf = _write_relay(tmp_path, [policy("p")], ["example.com"])
    cfg = write_config_dir(tmp_path / "etc")
    (cfg / "main.cf").write_text((conf / "main.cf").read_text().replace("/etc/postfix/postmaster", str(conf)))
    out = subprocess.run([POSTCONF, "-c", str(cfg), "-n"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    assert "relayhost = [smtp.gmail.com]:587" in out.stdout


def test_credentials_never_in_repr() -> None:
    assert PASSWORD not in repr(Credentials("u", PASSWORD))


def test_rate_limits_faster_than_one_a_second_are_not_capped() -> None:
    ep, _ = endpoint(host="smtp.example.com", port=587, rateLimit={"messages": 600, "per": "1m"})
    text = postfix_main_cf(ep, policies=[], sending_domains=[])
    assert "smtp_destination_rate_delay" not in text
    assert "600 messages per 60s" in text
    slow, _ = endpoint(host="smtp.example.com", port=587, rateLimit={"messages": 7, "per": "1m"})
    assert "smtp_destination_rate_delay = 9s" in postfix_main_cf(slow, policies=[], sending_domains=[])
