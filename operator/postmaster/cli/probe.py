"""`postmaster probe HOST ...`: walk an SMTP session against a mail server from a shell, the way the operator does.

    postmaster probe smtp.example.com --user alice@example.com --password-file pw.txt --mail-from alice@example.com
    postmaster probe smtp.example.com --port 465 --tls implicit --token-file token.txt --user alice@example.com
    postmaster probe smtp.example.com ... --send-test bob@example.net     # also sends one small test message

Prints each stage with the server's reply, the TLS facts and certificate, then the verdict (the reason the
operator would put into the ``SMTPReachable`` condition) and what to do about it; ``--json`` prints the same as JSON.
Credentials are read from files (``-`` for standard input), never from the command line, and never printed.
Exit status: 0 when every stage passed, 75 (EX_TEMPFAIL) when the failure is transient, 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from postmaster.checks.oauth2 import ClientCredentialsFlow, StaticToken, TokenSource
from postmaster.checks.smtp import (
    AuthMethod,
    Classification,
    ProbeConfig,
    ProbeHints,
    ProbeResult,
    Secret,
    SendResult,
    StageName,
    Timeouts,
    TlsMode,
    classify,
    probe,
    send_test_email,
)

EX_TEMPFAIL = 75
_DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.IMPLICIT: 465, TlsMode.NONE: 25}


def register(subparsers: Any) -> None:
    """Add ``probe`` to the main CLI's sub-commands."""
    parser = subparsers.add_parser(
        "probe",
        help="check an SMTP server stage by stage: TLS, AUTH, sender (sends nothing unless --send-test)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", help="the SMTP server's host name or IP address")
    parser.add_argument("--port", type=int, help="default: 587 for starttls, 465 for implicit, 25 for none")
    parser.add_argument(
        "--tls", choices=[m.value for m in TlsMode], default="starttls", help="how to encrypt (default: starttls)"
    )
    parser.add_argument("--no-verify", action="store_true", help="do not verify the server's certificate")
    parser.add_argument("--ca-file", type=Path, help="PEM file of CA certificates to trust instead of the system's")
    parser.add_argument(
        "--auth",
        choices=[m.value for m in AuthMethod],
        help="SASL mechanism (default: plain with --password-file, xoauth2 with a token, else none)",
    )
    parser.add_argument("--user", help="the login name")
    parser.add_argument("--password-file", type=Path, help="file holding the password or API key ('-': stdin)")
    parser.add_argument("--token-file", type=Path, help="file holding an OAuth2 bearer token ('-': stdin)")
    parser.add_argument("--token-url", help="OAuth2 token endpoint for the client-credentials grant")
    parser.add_argument("--client-id", help="OAuth2 client id (with --token-url)")
    parser.add_argument("--client-secret-file", type=Path, help="file holding the OAuth2 client secret ('-': stdin)")
    parser.add_argument("--scope", help="OAuth2 scope (Microsoft 365: https://outlook.office365.com/.default)")
    parser.add_argument("--mail-from", help="sender address to try with MAIL FROM")
    parser.add_argument("--rcpt-to", help="recipient address to try with RCPT TO (nothing is sent)")
    parser.add_argument("--send-test", metavar="ADDRESS", help="send one small test message to ADDRESS")
    parser.add_argument("--helo", help="name to send with EHLO (default: this machine's address literal)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per step (default: 10)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _read_secret(path: Path, what: str) -> Secret:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    value = text.strip("\r\n")
    if not value:
        raise ValueError(f"{what} file {path} is empty")
    return Secret(value)


def config_from_args(args: argparse.Namespace) -> ProbeConfig:
    """Turn the command line into a :class:`ProbeConfig`; ValueError/OSError for what cannot work."""
    tls = TlsMode(args.tls)
    token: TokenSource | None = None
    password: Secret | None = None
    if args.token_file and args.token_url:
        raise ValueError("give either --token-file or --token-url, not both")
    if args.password_file and (args.token_file or args.token_url):
        raise ValueError("give either a password or a token, not both")
    if args.password_file:
        password = _read_secret(args.password_file, "password")
    if args.token_file:
        token = StaticToken(_read_secret(args.token_file, "token"))
    if args.token_url:
        if not args.client_id or not args.client_secret_file:
            raise ValueError("--token-url needs --client-id and --client-secret-file")
        token = ClientCredentialsFlow(
            token_url=args.token_url,
            client_id=args.client_id,
            client_secret=_read_secret(args.client_secret_file, "client secret"),
            scope=args.scope,
            timeout=args.timeout,
        )
    if args.auth:
        auth = AuthMethod(args.auth)
    elif token is not None:
        auth = AuthMethod.XOAUTH2
    elif password is not None:
        auth = AuthMethod.PLAIN
    else:
        auth = AuthMethod.NONE
    return ProbeConfig(
        host=args.host,
        port=args.port or _DEFAULT_PORTS[tls],
        tls=tls,
        tls_verify=not args.no_verify,
        ca_bundle_pem=args.ca_file.read_text(encoding="utf-8") if args.ca_file else None,
        auth=auth,
        username=args.user,
        password=password,
        token=token,
        mail_from=args.mail_from,
        rcpt_to=args.rcpt_to,
        helo_name=args.helo,
        timeouts=Timeouts.uniform(args.timeout),
    )


async def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"postmaster probe: {exc}", file=sys.stderr)
        return 2
    sent: SendResult | None = None
    if args.send_test:
        if not config.mail_from:
            print("postmaster probe: --send-test needs --mail-from", file=sys.stderr)
            return 2
        try:
            sent = await send_test_email(config, args.send_test)
        except ValueError as exc:
            print(f"postmaster probe: {exc}", file=sys.stderr)
            return 2
        result = sent.probe
    else:
        result = await probe(config)
    verdict = classify(result, ProbeHints())
    if args.json:
        document: dict[str, Any] = {"probe": result.to_dict(), "verdict": verdict.to_dict()}
        if sent is not None:
            document["testMessage"] = {
                "recipient": sent.recipient,
                "messageId": sent.message_id,
                "accepted": sent.accepted,
                "queueId": sent.queue_id,
                "reply": str(sent.reply) if sent.reply else None,
            }
        print(json.dumps(document, indent=2))
    else:
        print(format_report(result, verdict, sent))
    if verdict.ok:
        return 0
    return EX_TEMPFAIL if verdict.transient else 1


def _describe_config(result: ProbeResult) -> str:
    tls = {"starttls": "STARTTLS", "implicit": "implicit TLS", "none": "no TLS"}[result.tls_mode]
    auth = "no AUTH" if result.auth_method == "none" else f"AUTH {result.auth_method.upper()} as {result.username}"
    return f"{result.host} port {result.port} ({tls}, {auth})"


def format_report(result: ProbeResult, verdict: Classification, sent: SendResult | None = None) -> str:
    """The human-readable report: one line per stage, the extensions, the certificate, the verdict."""
    lines = [f"Probing {_describe_config(result)}"]
    width = max((len(s.name.value) for s in result.stages), default=8)
    for stage in result.stages:
        status = "ok" if stage.ok else "FAILED"
        text: list[str] = []
        if stage.command:
            text.append(stage.command)
        if stage.reply is not None:
            text.append(("-> " if stage.command else "") + str(stage.reply))
        if stage.error and not stage.ok:
            text.append(f"({stage.error})")
        if stage.name is StageName.RESOLVE and stage.detail.get("addresses"):
            text.append(", ".join(stage.detail["addresses"]))
        if stage.name is StageName.CONNECT and stage.ok:
            text.append(result.peer or "")
        if stage.name is StageName.TLS and stage.ok and result.tls is not None:
            bits = f" ({result.tls.cipher_bits} bits)" if result.tls.cipher_bits else ""
            text.append(f"{result.tls.version} {result.tls.cipher}{bits}")
        if stage.name is StageName.TLS_SNIFF:
            text.append("this port answers TLS first" if stage.detail.get("speaks_tls") else "no TLS here either")
        lines.append(f"  {stage.name.value:<{width}}  {status:<6} {stage.duration_ms:8.1f} ms  {' '.join(text)}")
        extensions = None
        if stage.name is StageName.EHLO and stage.ok:
            extensions = result.ehlo
        elif stage.name is StageName.EHLO_AFTER_TLS and stage.ok:
            extensions = result.ehlo_after_tls
        if extensions is not None:
            shown = ", ".join(f"{k} {v}" if v else k for k, v in extensions.keywords.items())
            lines.append(f"  {'':<{width}}  {'':<6} {'':>11}  extensions: {shown or '(none)'}")
    tls = result.tls
    if tls is not None and tls.certificate is not None:
        cert = tls.certificate
        state = (
            "EXPIRED" if cert.expired else ("not yet valid" if cert.not_yet_valid else f"{cert.days_left} days left")
        )
        matched = {True: f"matches {tls.hostname}", False: f"does NOT match {tls.hostname}", None: "not checked"}
        chain = {True: f"verified ({tls.trust} trust store)", False: "NOT verified", None: "not checked"}
        lines += [
            "Certificate",
            f"  subject   {cert.subject}",
            f"  names     {', '.join(cert.sans) or '(none)'}",
            f"  issuer    {cert.issuer}{' (self-signed)' if cert.self_signed else ''}",
            f"  valid     {cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d} ({state})",
            f"  hostname  {matched[tls.hostname_matched]}",
            f"  chain     {chain[tls.chain_verified]}" + (f": {tls.verify_error}" if tls.verify_error else ""),
            f"  sha256    {cert.sha256}",
        ]
    if sent is not None:
        if sent.accepted:
            queued = f", queued as {sent.queue_id}" if sent.queue_id else ""
            lines.append(f"Test message to {sent.recipient} accepted{queued}: {sent.reply}")
        else:
            lines.append(f"Test message to {sent.recipient} NOT sent")
    if verdict.ok:
        lines.append(f"Verdict: {verdict.reason.value}. {verdict.message}")
    else:
        kind = "transient, will be retried" if verdict.transient else "permanent"
        person = "; needs a person" if verdict.needs_person else ""
        lines.append(f"Verdict: {verdict.reason.value} at {verdict.stage} ({kind}{person})")
        lines.append(f"  {verdict.message}")
    lines.extend(f"Warning: {w}" for w in verdict.warnings)
    return "\n".join(lines)
