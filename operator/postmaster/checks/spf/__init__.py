"""SPF (RFC 7208): the `check_host()` function, and a readiness verdict for a sending domain.

`check_host(ip, domain, sender, ...)` evaluates a domain's SPF policy for a connecting address exactly as a
receiving mail server does and returns an `SpfResult`: the result, the explanation for ``fail``, the
mechanism that matched, the DNS-querying terms and void lookups counted, and a trace.

`spf_readiness(domain, authorized_includes=..., authorized_ips=..., resolver=...)` answers the operator's
question: will receivers accept mail from this domain sent through the provider? It returns an
`SpfVerdict` whose `reason` is one of `SpfReason` and whose `message` names the record and what to change.

The package reads in the order the work happens:

* `parsing`: record, term and macro-string syntax; no DNS.
* `result`: what an evaluation returns (`SpfResult`, `SpfResultCode`, `SpfProblem`).
* `evaluation`: `check_host()` itself: mechanisms, include and redirect, macros, lookup limits.
* `readiness`: `spf_readiness()`: reasons, messages and the record to publish instead.

Import from here; the modules are an internal layout. Section numbers in comments and docstrings refer
to RFC 7208.
"""

from postmaster.checks.spf.evaluation import (
    DEFAULT_EXPLANATION,
    MAX_DNS_LOOKUPS,
    MAX_NAMES_PER_LOOKUP,
    MAX_VOID_LOOKUPS,
    check_host,
    default_resolver,
)
from postmaster.checks.spf.parsing import (
    MAX_STRING_BYTES,
    MacroExpand,
    MacroString,
    MacroToken,
    Mechanism,
    Modifier,
    SpfRecord,
    SpfSyntaxError,
    format_txt_strings,
    is_spf_record,
    parse_macro_string,
    parse_record,
    select_spf_records,
)
from postmaster.checks.spf.readiness import SpfReason, SpfVerdict, spf_readiness
from postmaster.checks.spf.result import ProblemKind, SpfProblem, SpfResult, SpfResultCode

__all__ = [
    "DEFAULT_EXPLANATION",
    "MAX_DNS_LOOKUPS",
    "MAX_NAMES_PER_LOOKUP",
    "MAX_STRING_BYTES",
    "MAX_VOID_LOOKUPS",
    "MacroExpand",
    "MacroString",
    "MacroToken",
    "Mechanism",
    "Modifier",
    "ProblemKind",
    "SpfProblem",
    "SpfReason",
    "SpfRecord",
    "SpfResult",
    "SpfResultCode",
    "SpfSyntaxError",
    "SpfVerdict",
    "check_host",
    "default_resolver",
    "format_txt_strings",
    "is_spf_record",
    "parse_macro_string",
    "parse_record",
    "select_spf_records",
    "spf_readiness",
]
