"""RestrictionPolicies compiled into Postfix PCRE access tables (access(5), pcre_table(5)).

Every user-supplied string is escaped here: `*` and `?` become `.*` and `.`, every other regular
expression metacharacter is quoted, `/` (the pattern delimiter) is escaped, and `$` in reply text is
doubled (pcre tables substitute `$1`). The model layer has already refused line breaks.

Each table answers DUNNO for an allowed address (so the next restriction still runs) and
`550 5.7.1 <text>` for a refused one; within one table the first matching line wins. Every policy gets
its own table and the relay chains them, so an address passes only when no policy refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from postmaster.api.restrictionpolicy import Restriction, RestrictionMode, RestrictionPolicySpec

ALLOW = "DUNNO"


@dataclass(frozen=True)
class NamedPolicy:
    namespace: str
    name: str
    spec: RestrictionPolicySpec


def wildcard_regex(pattern: str) -> str:
    """An exception pattern as an anchored regex over a lowercase address.

    With `@` the pattern covers the whole address; without, it covers the domain part.
    """
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())
    body = body.replace("/", r"\/")
    if "@" in pattern:
        return f"^{body}$"
    return f"^[^@]*@{body}$"


def domain_regex(domain: str, *, subdomains: bool) -> str:
    escaped = re.escape(domain.lower().rstrip("."))
    prefix = r"([^@]+\.)?" if subdomains else ""
    return f"^[^@]*@{prefix}{escaped}$"


def _reject(text: str, status: str = "5.7.1") -> str:
    return f"550 {status} {text.replace('$', '$$')}"


def restriction_lines(restriction: Restriction, local_domains: Sequence[str], reject_text: str) -> list[str]:
    """Lines of one restriction, first match wins."""
    lines: list[str] = []
    mode = restriction.mode
    if mode is RestrictionMode.ALLOW_ALL:
        lines += [f"/{wildcard_regex(p)}/ {_reject(reject_text)}" for p in restriction.exceptions]
        return lines
    lines += [f"/{wildcard_regex(p)}/ {ALLOW}" for p in restriction.exceptions]
    if mode in (RestrictionMode.LOCAL_DOMAIN, RestrictionMode.LOCAL_DOMAIN_AND_SUBDOMAINS):
        subdomains = mode is RestrictionMode.LOCAL_DOMAIN_AND_SUBDOMAINS
        lines += [f"/{domain_regex(d, subdomains=subdomains)}/ {ALLOW}" for d in local_domains]
    lines.append(f"/^/ {_reject(reject_text)}")
    return lines


def _header(policy: NamedPolicy, direction: str, restriction: Restriction) -> str:
    return f"# RestrictionPolicy {policy.namespace}/{policy.name}: {direction} {restriction.mode.value}"


def suppression_table(policies: Sequence[NamedPolicy]) -> str:
    lines = ["# Suppressed recipients: never sent to, whatever the policy says."]
    for policy in policies:
        for pattern in policy.spec.suppressed:
            lines.append(f"/{wildcard_regex(pattern)}/ {_reject('Recipient suppressed', '5.1.1')}")
    return "\n".join(lines) + "\n"


def policy_table(policy: NamedPolicy, direction: str) -> str:
    """One policy's send (recipient) or receive (sender) table."""
    restriction = policy.spec.send if direction == "send" else policy.spec.receive
    lines = [_header(policy, direction, restriction)]
    lines += restriction_lines(restriction, policy.spec.local_domains, policy.spec.reject_message)
    return "\n".join(lines) + "\n"
