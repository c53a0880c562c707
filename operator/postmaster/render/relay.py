"""ConfigMap and Secret `<provider>-relay`: configuration for an in-cluster Postfix relay.

The ConfigMap is mounted at CONFIG_DIR and the Secret at SECRET_DIR. `main.cf` is a fragment the relay
appends to its image's main.cf (Postfix has no include directive); the access tables are PCRE tables
read in place, and sasl_passwd is a texthash table, so nothing needs `postmap` on a read-only mount.
A MailProvider with `caBundleRef` gets its CA certificates as `ca.crt` in the ConfigMap, the relay's
`smtp_tls_CAfile`. Postfix reads all of these as root before it drops privileges and enters its
chroot, so the Secret may be mounted readable by root only.

Appended settings override the image's (the last entry wins; Postfix logs "overriding earlier entry"
for each one it sees twice; applying the fragment's lines with `postconf -e` instead replaces them in
place, silently). The image needs postfix-pcre and, for PLAIN and LOGIN, Cyrus SASL's client modules
(Debian: libsasl2-modules); its own main.cf sets mynetworks to the workloads' addresses.

Sender restrictions are Postfix's: evaluated, and refused, at RCPT TO (`smtpd_delay_reject`), with
"Sender address rejected" in the reply. The access tables are looked up with the address Postfix will
deliver to (after its percent-hack, bang-path, quoting and trailing-dot rewriting), so those spellings
cannot slip past a policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from postmaster.api.mailprovider import AuthMethod, TLSMode
from postmaster.render.access import NamedPolicy, domain_regex, policy_table, suppression_table
from postmaster.render.ownership import Owner, child_metadata
from postmaster.render.smtp_secret import encode_data
from postmaster.resolution import Credentials, Endpoint, SpecError

CONFIG_DIR = "/etc/postfix/postmaster"
SECRET_DIR = "/etc/postfix/postmaster-secret"  # noqa: S105  (a mount path, not a password)
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
CA_BUNDLE_KEY = "ca.crt"  # the ConfigMap key holding the MailProvider's caBundleRef certificates, when it has one

_SASL_MECHANISM = {
    AuthMethod.PLAIN: "plain",
    AuthMethod.LOGIN: "login",
    AuthMethod.CRAM_MD5: "cram-md5",
    AuthMethod.XOAUTH2: "xoauth2",
}


def relay_name(provider: str) -> str:
    return f"{provider}-relay"


def nexthop(endpoint: Endpoint) -> str:
    """The relayhost: brackets turn off MX lookups, as a submission server must be used directly."""
    return f"[{endpoint.host}]:{endpoint.port}"


def sasl_passwd(endpoint: Endpoint, credentials: Credentials | None) -> str:
    """texthash table: `[host]:port username:password`. Credentials were checked for line breaks."""
    if credentials is None:
        return ""
    return f"{nexthop(endpoint)} {credentials.username}:{credentials.password}\n"


def postfix_main_cf(
    endpoint: Endpoint,
    *,
    policies: Sequence[NamedPolicy],
    sending_domains: Sequence[str],
    ca_file: str | None = None,
) -> str:
    """The main.cf fragment that relays everything through the provider."""
    lines = [
        f"# Relay through MailProvider preset {endpoint.preset.value}: {nexthop(endpoint)} ({endpoint.tls.value})",
        f"relayhost = {nexthop(endpoint)}",
        "smtp_tls_loglevel = 1",
    ]
    if endpoint.tls is TLSMode.NONE:
        lines.append("smtp_tls_security_level = may")
    else:
        # "secure" verifies the chain and that the certificate names the relayhost; "encrypt" only encrypts.
        lines.append(f"smtp_tls_security_level = {'secure' if endpoint.tls_verify else 'encrypt'}")
        if endpoint.tls_verify:
            lines.append("smtp_tls_secure_cert_match = nexthop")
        lines.append(f"smtp_tls_CAfile = {ca_file or SYSTEM_CA_FILE}")
    if endpoint.tls is TLSMode.IMPLICIT:
        lines.append("smtp_tls_wrappermode = yes")
    if endpoint.auth_method is AuthMethod.NONE:
        lines.append("smtp_sasl_auth_enable = no")
    else:
        lines += [
            "smtp_sasl_auth_enable = yes",
            f"smtp_sasl_password_maps = texthash:{SECRET_DIR}/sasl_passwd",
            "smtp_sasl_security_options = noanonymous",
            "smtp_sasl_tls_security_options = noanonymous",
            f"smtp_sasl_mechanism_filter = {_SASL_MECHANISM[endpoint.auth_method]}",
        ]
        if endpoint.auth_method is AuthMethod.XOAUTH2:
            lines.append("# xoauth2 needs the sasl-xoauth2 plugin in the relay image; tokens come from the operator.")
    if endpoint.rate_limit is not None:
        rate = endpoint.rate_limit
        described = f"# rate limit: {rate.messages} messages per {int(rate.per.total_seconds())}s"
        if rate.seconds_between_messages >= 1:
            # One delivery at a time, spaced so the provider's limit is never exceeded (whole seconds:
            # Postfix's resolution; rounding up keeps below the limit).
            lines += [
                described,
                "smtp_destination_concurrency_limit = 1",
                f"smtp_destination_rate_delay = {math.ceil(rate.seconds_between_messages)}s",
            ]
        else:
            # Postfix spaces deliveries in whole seconds only: a limit above one message a second is
            # left to the provider rather than capped at 60 a minute.
            lines.append(described + " (faster than Postfix's rate delay can express: not enforced here)")
    recipient = [f"check_recipient_access pcre:{CONFIG_DIR}/suppressed.pcre"]
    recipient += [f"check_recipient_access pcre:{CONFIG_DIR}/send-{p.name}.pcre" for p in policies]
    sender = []
    if sending_domains:
        sender.append(f"check_sender_access pcre:{CONFIG_DIR}/sender-domains.pcre")
    sender += [f"check_sender_access pcre:{CONFIG_DIR}/receive-{p.name}.pcre" for p in policies]
    lines.append("smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject")
    lines.append("smtpd_recipient_restrictions = " + ", ".join(recipient))
    lines.append("smtpd_sender_restrictions = " + (", ".join(sender) if sender else "permit"))
    return "\n".join(lines) + "\n"


def sender_domains_table(sending_domains: Sequence[str]) -> str:
    """Only envelope senders of the provider's SendingDomains may relay: providers refuse the others."""
    lines = ["# Envelope senders in a SendingDomain of this provider (and the null sender of bounces)."]
    lines.append("/^<>$/ DUNNO")
    lines += [f"/{domain_regex(d, subdomains=False)}/ DUNNO" for d in sorted(set(sending_domains))]
    lines.append("/^/ 550 5.7.1 Sender domain is not a SendingDomain of this provider")
    return "\n".join(lines) + "\n"


def relay_ca_certificates(ca_bundle: str) -> str:
    """The certificates of a PEM bundle, re-encoded: nothing else in the bundle (a private key pasted by mistake,
    comments) reaches the ConfigMap. Raises SpecError when there is no readable certificate."""
    try:
        certificates = x509.load_pem_x509_certificates(ca_bundle.encode())
    except ValueError:
        raise SpecError(
            "spec.caBundleRef",
            "the CA bundle holds no readable PEM certificate: put one or more -----BEGIN CERTIFICATE----- blocks "
            "in the ConfigMap key",
        ) from None
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def relay_config_data(
    endpoint: Endpoint,
    *,
    policies: Sequence[NamedPolicy],
    sending_domains: Sequence[str],
    ca_bundle: str | None = None,
) -> dict[str, str]:
    """Every key of the relay ConfigMap.

    `ca_bundle`: the PEM text of the MailProvider's `caBundleRef`, when it has one. Its certificates travel in the
    ConfigMap as `ca.crt` (certificates are public) and become the relay's only trust anchors (`smtp_tls_CAfile`).
    """
    ordered = sorted(policies, key=lambda p: p.name)
    certificates = relay_ca_certificates(ca_bundle) if ca_bundle is not None else None
    ca_file = f"{CONFIG_DIR}/{CA_BUNDLE_KEY}" if certificates is not None else None
    data = {
        "main.cf": postfix_main_cf(endpoint, policies=ordered, sending_domains=sending_domains, ca_file=ca_file),
        "suppressed.pcre": suppression_table(ordered),
    }
    if certificates is not None:
        data[CA_BUNDLE_KEY] = certificates
    if sending_domains:
        data["sender-domains.pcre"] = sender_domains_table(sending_domains)
    for policy in ordered:
        data[f"send-{policy.name}.pcre"] = policy_table(policy, "send")
        data[f"receive-{policy.name}.pcre"] = policy_table(policy, "receive")
    return data


def relay_config_map(
    owner: Owner,
    endpoint: Endpoint,
    *,
    policies: Sequence[NamedPolicy],
    sending_domains: Sequence[str],
    ca_bundle: str | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(owner, relay_name(owner.name), "relay-config"),
        "data": relay_config_data(endpoint, policies=policies, sending_domains=sending_domains, ca_bundle=ca_bundle),
    }


def relay_secret(owner: Owner, endpoint: Endpoint, credentials: Credentials | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": child_metadata(owner, relay_name(owner.name), "relay-credentials"),
        "data": encode_data({"sasl_passwd": sasl_passwd(endpoint, credentials)}),
    }
