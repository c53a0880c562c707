"""The relay configuration Postmaster renders, run by Debian's Postfix and driven as a workload drives it.

A MailProvider points at an upstream "provider" (aiosmtpd: STARTTLS, AUTH PLAIN/LOGIN, certificates from the test
CA). `relay_config_map` and `relay_secret` render the relay's ConfigMap and Secret from it and from two
RestrictionPolicies and a SendingDomain; the files are laid out like the Pod's mounts, the `main.cf` fragment is
appended to Debian's default main.cf, and `postfix start-fg` runs it. smtplib then submits mail to that Postfix, and
the upstream shows what Postfix relayed, and how: authenticated as whom, over TLS or not.
"""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from postmaster.api.mailprovider import MailProviderSpec
from postmaster.api.restrictionpolicy import RestrictionPolicySpec
from postmaster.render.access import NamedPolicy
from postmaster.render.ownership import Owner
from postmaster.render.relay import CA_BUNDLE_KEY, relay_config_map, relay_secret
from postmaster.resolution import SpecError, resolve_credentials, resolve_endpoint
from tests.fixtures.relay import (
    UPSTREAM_NAME,
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    Delivery,
    RelayFactory,
    RelayPostfix,
    Upstream,
    UpstreamFactory,
    running_relay,
    running_upstream,
)
from tests.fixtures.smtp import HOST, Pki

OWNER = Owner(kind="MailProvider", name="provider", namespace="team-a", uid="0000-relay")
SENDER = "app@example.com"

# The issue's example: local domain and subdomains, except *@partner.example; and a suppression list.
INTERNAL = {
    "providerRef": {"name": "provider"},
    "localDomains": ["example.com"],
    "send": {"mode": "LocalDomainAndSubdomains", "exceptions": ["*@partner.example"]},
    "suppressed": ["bounced@example.com"],
}
# Only two envelope senders may use the relay; every recipient is fine as far as this policy goes.
SENDERS = {
    "providerRef": {"name": "provider"},
    "localDomains": ["example.com"],
    "receive": {"mode": "DenyAll", "exceptions": [SENDER, "alerts@example.com"]},
    "rejectMessage": "Only app@ and alerts@ send through this relay",
}


def provider_spec(port: int, **fields: Any) -> MailProviderSpec:
    spec: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "tls": "starttls",
        "tlsVerify": True,
        "caBundleRef": {"name": "provider-ca"},
        "auth": {"method": "plain", "credentialsSecretRef": {"name": "provider-credentials"}},
        "from": {"address": SENDER},
    }
    spec.update(fields)
    return MailProviderSpec.model_validate(spec)


def render(
    spec: MailProviderSpec,
    *,
    ca_pem: str | None,
    policies: dict[str, dict[str, Any]] | None = None,
    sending_domains: tuple[str, ...] = (),
) -> tuple[dict[str, str], dict[str, str]]:
    """The relay ConfigMap's and Secret's data, as the operator writes them (the Secret decoded)."""
    endpoint = resolve_endpoint(spec)
    credentials = resolve_credentials(spec, endpoint, {"username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD})
    named = [
        NamedPolicy(OWNER.namespace, name, RestrictionPolicySpec.model_validate(body))
        for name, body in (policies or {}).items()
    ]
    config_map = relay_config_map(
        OWNER, endpoint, policies=named, sending_domains=list(sending_domains), ca_bundle=ca_pem
    )
    secret = relay_secret(OWNER, endpoint, credentials)
    secret_data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return config_map["data"], secret_data


def message(subject: str, sender: str = SENDER, to: str = "alice@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="workload.test")
    msg.set_content(f"{subject}\n")
    return msg


def delivery_of(upstream: Upstream, msg: EmailMessage, relay: RelayPostfix) -> Delivery:
    """Wait for the upstream to receive this message."""
    return upstream.wait_for(str(msg["Message-ID"]), lambda: relay.log)


def refusal(relay: RelayPostfix, sender: str, recipient: str) -> tuple[int, str]:
    """Submit a message as a workload does; return the (code, text) the relay refused the one recipient with."""
    with (
        smtplib.SMTP(HOST, relay.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        client.sendmail(sender, [recipient], message("refused", sender, recipient).as_bytes())
    ((address, (code, text)),) = refused.value.recipients.items()
    assert address == recipient
    return code, text.decode()


# -- one relay for the provider, its policies and its SendingDomain ----------------------------------------------


@dataclass(frozen=True)
class Scenario:
    upstream: Upstream
    relay: RelayPostfix
    data: dict[str, str]  # the ConfigMap's


@pytest.fixture(scope="module")
def scenario(pki: Pki) -> Iterator[Scenario]:
    with running_upstream(pki.good) as upstream:
        spec = provider_spec(upstream.port, rateLimit={"messages": 60, "per": "1m"})
        data, secret = render(
            spec,
            ca_pem=pki.ca_pem,
            policies={"internal": INTERNAL, "senders": SENDERS},
            sending_domains=("example.com",),
        )
        with running_relay(data, secret) as relay:
            yield Scenario(upstream, relay, data)


def test_postfix_takes_the_rendered_settings_over_the_images(scenario: Scenario) -> None:
    relay = scenario.relay
    values = relay.postconf(
        "relayhost",
        "smtp_tls_security_level",
        "smtp_tls_secure_cert_match",
        "smtp_tls_CAfile",
        "smtp_sasl_auth_enable",
        "smtp_sasl_password_maps",
        "smtp_sasl_mechanism_filter",
        "smtp_destination_rate_delay",
        "smtp_destination_concurrency_limit",
        "smtpd_relay_restrictions",
        "smtpd_recipient_restrictions",
        "smtpd_sender_restrictions",
    )
    assert values["relayhost"] == f"[127.0.0.1]:{scenario.upstream.port}"
    assert values["smtp_tls_security_level"] == "secure"
    assert values["smtp_tls_secure_cert_match"] == "nexthop"
    assert values["smtp_tls_CAfile"] == f"{relay.config_dir}/{CA_BUNDLE_KEY}"
    assert values["smtp_sasl_auth_enable"] == "yes"
    assert values["smtp_sasl_password_maps"] == f"texthash:{relay.secret_dir}/sasl_passwd"
    assert values["smtp_sasl_mechanism_filter"] == "plain"
    assert values["smtp_destination_rate_delay"] == "1s"  # 60 messages per minute
    assert values["smtp_destination_concurrency_limit"] == "1"
    # The image's own "permit_mynetworks permit_sasl_authenticated defer_unauth_destination" is overridden.
    assert values["smtpd_relay_restrictions"] == "permit_mynetworks, permit_sasl_authenticated, reject"
    assert values["smtpd_recipient_restrictions"] == (
        f"check_recipient_access pcre:{relay.config_dir}/suppressed.pcre, "
        f"check_recipient_access pcre:{relay.config_dir}/send-internal.pcre, "
        f"check_recipient_access pcre:{relay.config_dir}/send-senders.pcre"
    )
    assert values["smtpd_sender_restrictions"] == (
        f"check_sender_access pcre:{relay.config_dir}/sender-domains.pcre, "
        f"check_sender_access pcre:{relay.config_dir}/receive-internal.pcre, "
        f"check_sender_access pcre:{relay.config_dir}/receive-senders.pcre"
    )


def test_config_map_carries_the_ca_and_no_secret(scenario: Scenario, pki: Pki) -> None:
    data = scenario.data
    assert data[CA_BUNDLE_KEY] == pki.ca_pem
    assert UPSTREAM_PASSWORD not in repr(data)
    assert sorted(data) == [
        "ca.crt",
        "main.cf",
        "receive-internal.pcre",
        "receive-senders.pcre",
        "send-internal.pcre",
        "send-senders.pcre",
        "sender-domains.pcre",
        "suppressed.pcre",
    ]


def test_allowed_recipients_are_relayed_with_auth_over_verified_starttls(scenario: Scenario) -> None:
    upstream, relay = scenario.upstream, scenario.relay
    msg = message("allowed recipients", to="alice@example.com")
    recipients = ["alice@example.com", "bob@eu.example.com", "carol@partner.example"]
    with smtplib.SMTP(HOST, relay.port, timeout=10) as client:
        assert client.sendmail(SENDER, recipients, msg.as_bytes()) == {}

    delivery = delivery_of(upstream, msg, relay)
    assert delivery.mail_from == SENDER
    assert sorted(delivery.rcpt_tos) == sorted(recipients)
    assert delivery.tls
    assert delivery.login == UPSTREAM_USER
    attempts = upstream.handler.auth_attempts
    assert attempts
    assert all(a.mechanism == "PLAIN" and a.tls and a.success and a.login == UPSTREAM_USER for a in attempts)
    assert f"Verified TLS connection established to 127.0.0.1[127.0.0.1]:{upstream.port}" in relay.log
    assert UPSTREAM_PASSWORD not in relay.log


@pytest.mark.parametrize(
    "recipient",
    [
        "eve@evil.example",
        "eve@notexample.com",
        "eve@example.com.evil.example",
        "bob@sub.partner.example",  # the exception names partner.example only, not its subdomains
        # Spellings Postfix rewrites before delivery: the tables see the rewritten address, so none slips past.
        "eve%evil.example@localhost",
        "evil.example!eve@localhost",
        '"eve@evil.example"@localhost',
    ],
)
def test_recipient_outside_the_policy_is_refused_at_rcpt_to(scenario: Scenario, recipient: str) -> None:
    code, text = refusal(scenario.relay, SENDER, recipient)

    assert code == 550
    assert text.startswith("5.7.1 <")
    assert text.endswith(">: Recipient address rejected: Permission denied")


@pytest.mark.parametrize("recipient", ["bounced@example.com", "Bounced@Example.COM", "bounced@example.com."])
def test_suppressed_recipient_is_refused(scenario: Scenario, recipient: str) -> None:
    code, text = refusal(scenario.relay, SENDER, recipient)

    assert (code, text) == (550, f"5.1.1 <{recipient}>: Recipient address rejected: Recipient suppressed")


def test_sender_outside_the_sending_domains_is_refused_at_rcpt_to(scenario: Scenario) -> None:
    """Postfix evaluates smtpd_sender_restrictions at RCPT TO (smtpd_delay_reject): MAIL FROM gets 250, then every
    recipient gets the permanent sender refusal, so smtplib raises SMTPRecipientsRefused and nothing is queued."""
    relay = scenario.relay
    with smtplib.SMTP(HOST, relay.port, timeout=10) as client:
        client.ehlo()
        assert client.mail("app@other.example")[0] == 250
        code, text = client.rcpt("alice@example.com")
        client.rset()
    assert (code, text.decode()) == (
        550,
        "5.7.1 <app@other.example>: Sender address rejected: Sender domain is not a SendingDomain of this provider",
    )
    # A subdomain is not the SendingDomain.
    assert refusal(relay, "app@eu.example.com", "alice@example.com") == (
        550,
        "5.7.1 <app@eu.example.com>: Sender address rejected: Sender domain is not a SendingDomain of this provider",
    )


def test_receive_restriction_refuses_other_senders(scenario: Scenario) -> None:
    code, text = refusal(scenario.relay, "ops@example.com", "alice@example.com")

    assert (code, text) == (
        550,
        "5.7.1 <ops@example.com>: Sender address rejected: Only app@ and alerts@ send through this relay",
    )


def test_rate_delay_spaces_deliveries(scenario: Scenario) -> None:
    """smtp_destination_rate_delay = 1s (60 per minute): the second message leaves at least a second after the first."""
    upstream, relay = scenario.upstream, scenario.relay
    first, second = message("rate 1", "alerts@example.com"), message("rate 2", "alerts@example.com")
    with smtplib.SMTP(HOST, relay.port, timeout=10) as client:
        client.send_message(first)
        client.send_message(second)

    times = sorted(delivery_of(upstream, m, relay).received_at for m in (first, second))
    assert times[1] - times[0] >= 0.9, relay.log[-2000:]


def test_nothing_left_behind_and_nothing_logged_amiss(scenario: Scenario) -> None:
    """After the tests above: every accepted message was delivered, every refused one left nothing in the queue, and
    Postfix logged no warning or error (but for the image's settings the fragment overrides)."""
    relay = scenario.relay
    assert "Mail queue is empty" in relay.queue()
    assert relay.problems() == []
    assert UPSTREAM_PASSWORD not in relay.log


# -- TLS and authentication variants, one relay each --------------------------------------------------------------


def _send(relay: RelayPostfix, subject: str) -> EmailMessage:
    msg = message(subject)
    with smtplib.SMTP(HOST, relay.port, timeout=10) as client:
        client.send_message(msg)
    return msg


def _deferred_for_tls(relay: RelayPostfix) -> None:
    match = relay.wait_for_log(r"to=<alice@example\.com>, relay=\S+, .*status=deferred \((.*)\)")
    assert match.group(1) == "Server certificate not verified"
    assert "Mail queue is empty" not in relay.queue()  # kept, to be retried


@pytest.mark.parametrize(
    ("tls", "method", "mechanism"), [("starttls", "login", "LOGIN"), ("implicit", "plain", "PLAIN")]
)
def test_implicit_tls_and_login(
    pki: Pki, upstream_factory: UpstreamFactory, relay_factory: RelayFactory, tls: str, method: str, mechanism: str
) -> None:
    upstream = upstream_factory(pki.good, implicit_tls=tls == "implicit")
    auth = {"method": method, "credentialsSecretRef": {"name": "provider-credentials"}}
    data, secret = render(provider_spec(upstream.port, tls=tls, auth=auth), ca_pem=pki.ca_pem)
    relay = relay_factory(data, secret)

    delivery = delivery_of(upstream, _send(relay, f"{tls} {method}"), relay)

    assert relay.postconf("smtp_tls_wrappermode", "smtp_sasl_mechanism_filter", "smtp_destination_rate_delay") == {
        "smtp_tls_wrappermode": "yes" if tls == "implicit" else "no",
        "smtp_sasl_mechanism_filter": method,
        "smtp_destination_rate_delay": "0s",  # no rateLimit, no delay
    }
    assert delivery.tls
    assert delivery.login == UPSTREAM_USER
    assert [(a.mechanism, a.tls, a.success) for a in upstream.handler.auth_attempts] == [(mechanism, True, True)]
    assert relay.problems() == []


@pytest.mark.parametrize(
    ("leaf", "why"),
    [
        ("wrong_host", "num=64:IP address mismatch"),  # a certificate for mail.other.example only
        ("untrusted", "untrusted issuer /O=Somebody Else's CA"),  # signed by a CA that is not in ca.crt
    ],
)
def test_unverified_upstream_gets_neither_mail_nor_credentials(
    pki: Pki, upstream_factory: UpstreamFactory, relay_factory: RelayFactory, leaf: str, why: str
) -> None:
    upstream = upstream_factory(getattr(pki, leaf))
    data, secret = render(provider_spec(upstream.port), ca_pem=pki.ca_pem)
    relay = relay_factory(data, secret)

    _send(relay, "to an impostor")

    _deferred_for_tls(relay)
    assert why in relay.log
    assert upstream.deliveries == []
    assert upstream.handler.auth_attempts == []  # the password was never offered
    assert relay.problems() == []


def test_without_the_ca_bundle_the_system_store_does_not_trust_a_private_ca(
    pki: Pki, upstream_factory: UpstreamFactory, relay_factory: RelayFactory
) -> None:
    upstream = upstream_factory(pki.good)
    data, secret = render(provider_spec(upstream.port, caBundleRef=None), ca_pem=None)
    assert CA_BUNDLE_KEY not in data
    relay = relay_factory(data, secret)

    _send(relay, "private CA, system store")

    assert relay.postconf("smtp_tls_CAfile") == {"smtp_tls_CAfile": "/etc/ssl/certs/ca-certificates.crt"}
    _deferred_for_tls(relay)
    assert "untrusted issuer /O=Postmaster Test CA" in relay.log
    assert upstream.deliveries == []
    assert upstream.handler.auth_attempts == []
    assert relay.problems() == []


def test_tls_verify_false_encrypts_without_verifying(
    pki: Pki, upstream_factory: UpstreamFactory, relay_factory: RelayFactory
) -> None:
    upstream = upstream_factory(pki.untrusted)
    data, secret = render(provider_spec(upstream.port, tlsVerify=False), ca_pem=pki.ca_pem)
    relay = relay_factory(data, secret)

    delivery = delivery_of(upstream, _send(relay, "unverified but encrypted"), relay)

    assert relay.postconf("smtp_tls_security_level") == {"smtp_tls_security_level": "encrypt"}
    assert "Untrusted TLS connection established" in relay.log
    assert delivery.tls
    assert delivery.login == UPSTREAM_USER
    assert relay.problems() == []


# What a real provider looks like: the relayhost is a name, and the certificate names it (here a DNS SAN only, no IP
# address). The name resolves through the chroot's hosts file (see `start_relay`); the rendered files are unchanged.


def test_provider_host_name_in_the_certificate(
    pki: Pki, upstream_factory: UpstreamFactory, relay_factory: RelayFactory
) -> None:
    upstream = upstream_factory(pki.ca.issue_cert(UPSTREAM_NAME))
    data, secret = render(provider_spec(upstream.port, host=UPSTREAM_NAME), ca_pem=pki.ca_pem)
    assert secret == {"sasl_passwd": f"[{UPSTREAM_NAME}]:{upstream.port} {UPSTREAM_USER}:{UPSTREAM_PASSWORD}\n"}
    relay = relay_factory(data, secret, hosts={UPSTREAM_NAME: HOST})

    delivery = delivery_of(upstream, _send(relay, "by name"), relay)

    assert f"Verified TLS connection established to {UPSTREAM_NAME}[127.0.0.1]:{upstream.port}" in relay.log
    assert delivery.login == UPSTREAM_USER
    assert relay.problems() == []


def test_provider_host_name_not_in_the_certificate(
    pki: Pki, upstream_factory: UpstreamFactory, relay_factory: RelayFactory
) -> None:
    upstream = upstream_factory(pki.ca.issue_cert("mail.other.example", HOST))  # the right IP, the wrong name
    data, secret = render(provider_spec(upstream.port, host=UPSTREAM_NAME), ca_pem=pki.ca_pem)
    relay = relay_factory(data, secret, hosts={UPSTREAM_NAME: HOST})

    _send(relay, "by name, wrong certificate")

    _deferred_for_tls(relay)
    assert f"verification failed for {UPSTREAM_NAME}[127.0.0.1]:{upstream.port}: num=62:hostname mismatch" in relay.log
    assert upstream.deliveries == []
    assert upstream.handler.auth_attempts == []
    assert relay.problems() == []


def test_ca_bundle_keeps_only_certificates(pki: Pki) -> None:
    """Only certificates reach the ConfigMap, whatever else the referenced bundle holds; no certificate, no render."""
    bundle = "# our CA\n" + pki.good.private_key_pem.bytes().decode() + pki.ca_pem
    data, _ = render(provider_spec(587), ca_pem=bundle)
    assert data[CA_BUNDLE_KEY] == pki.ca_pem
    assert "PRIVATE KEY" not in repr(data)
    with pytest.raises(SpecError) as error:
        render(provider_spec(587), ca_pem="not a certificate")
    assert error.value.field_path == "spec.caBundleRef"
