"""SPF record syntax (RFC 7208 section 12's ABNF; sections 4.5, 4.6.1, 5, 6 and 7.1).

`parse_record(text)` turns one published record into an `SpfRecord` of `Mechanism` and `Modifier` terms,
raising `SpfSyntaxError` for anything the ABNF does not allow; `parse_macro_string(text)` does the same
for a macro-string (a domain-spec or an explanation). `select_spf_records` picks the SPF records out of a
TXT answer, and `format_txt_strings` writes a record as zone-file character-strings. Nothing here
touches DNS: evaluation lives in `evaluation`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from postmaster.checks.dns import TxtRecord
from postmaster.checks.spf.result import QUALIFIER_RESULT

MAX_STRING_BYTES = 255
"""RFC 1035 section 3.3: one TXT character-string."""


class SpfSyntaxError(ValueError):
    """A record, term or macro string that the ABNF does not allow."""

    def __init__(self, term: str, reason: str) -> None:
        super().__init__(f"{term!r}: {reason}")
        self.term = term
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MacroExpand:
    """``%{letter digits r delimiters}``; an upper-case letter asks for URL escaping (section 7.3)."""

    letter: str
    url_escape: bool = False
    digits: int | None = None
    reverse: bool = False
    delimiters: str = ""


MacroToken = str | MacroExpand


@dataclass(frozen=True, slots=True)
class MacroString:
    source: str
    tokens: tuple[MacroToken, ...]

    @property
    def has_macros(self) -> bool:
        return any(isinstance(token, MacroExpand) for token in self.tokens)


_MACRO_BODY = re.compile(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)")
_MACRO_LETTERS = frozenset("slodiphcrtv")
_EXP_ONLY_LETTERS = frozenset("crt")


def parse_macro_string(text: str, *, explain: bool = False, term: str | None = None) -> MacroString:
    """Parse a macro-string (section 7.1). `explain` allows SP and the letters c, r and t (exp text only)."""
    where = term if term is not None else text
    tokens: list[MacroToken] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            follower = text[i + 1 : i + 2]
            if follower == "%":
                literal.append("%")
                i += 2
            elif follower == "_":
                literal.append(" ")
                i += 2
            elif follower == "-":
                literal.append("%20")
                i += 2
            elif follower == "{":
                close = text.find("}", i + 2)
                if close < 0:
                    raise SpfSyntaxError(where, "macro '%{' is not closed with '}'")
                body = text[i + 2 : close]
                match = _MACRO_BODY.fullmatch(body)
                if match is None:
                    raise SpfSyntaxError(where, f"invalid macro '%{{{body}}}'")
                letter_raw, digits_text, reverse, delimiters = match.groups()
                letter = letter_raw.lower()
                if letter not in _MACRO_LETTERS:
                    raise SpfSyntaxError(where, f"unknown macro letter '{letter_raw}' in '%{{{body}}}'")
                if letter in _EXP_ONLY_LETTERS and not explain:
                    raise SpfSyntaxError(
                        where, f"macro letter '{letter_raw}' is allowed only in exp text (section 7.2)"
                    )
                digits = int(digits_text) if digits_text else None
                if digits == 0:
                    raise SpfSyntaxError(where, f"macro '%{{{body}}}' keeps zero parts (section 7.3)")
                if literal:
                    tokens.append("".join(literal))
                    literal = []
                tokens.append(MacroExpand(letter, letter_raw.isupper(), digits, bool(reverse), delimiters))
                i = close + 1
            else:
                raise SpfSyntaxError(where, "'%' must be followed by '{', '%', '_' or '-' (section 7.1)")
        elif "\x21" <= char <= "\x7e" or (explain and char == " "):
            literal.append(char)
            i += 1
        else:
            raise SpfSyntaxError(where, f"character {char!r} is not allowed here")
    if literal:
        tokens.append("".join(literal))
    return MacroString(text, tuple(tokens))


_TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")


def _parse_domain_spec(text: str, term: str) -> MacroString:
    """domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand."""
    if not text:
        raise SpfSyntaxError(term, "a domain is required after ':' or '='")
    spec = parse_macro_string(text, term=term)
    last = spec.tokens[-1]
    if isinstance(last, MacroExpand) or text.endswith(("%%", "%_", "%-")):
        return spec
    body = last[:-1] if last.endswith(".") else last
    dot = body.rfind(".")
    if dot < 0 and len(spec.tokens) == 1:
        raise SpfSyntaxError(term, f"'{text}' is not a fully qualified domain name")
    toplabel = body[dot + 1 :]
    if dot < 0 or not _TOPLABEL.fullmatch(toplabel):
        raise SpfSyntaxError(term, f"'{text}' does not end in a valid top-level label (section 4.6.1, domain-end)")
    return spec


_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)", re.DOTALL)
_MECHANISM_NAME = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)(.*)", re.DOTALL)
_DUAL_CIDR = re.compile(r"(?:/(0|[1-9][0-9]*))?(?://(0|[1-9][0-9]*))?\Z")
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4_NETWORK = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}")


@dataclass(frozen=True, slots=True)
class Mechanism:
    """A directive: qualifier and mechanism (section 4.6.2, section 5)."""

    text: str
    qualifier: str
    name: str
    domain_spec: MacroString | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int | None = None
    cidr6: int | None = None

    @property
    def queries_dns(self) -> bool:
        return self.name in _LOOKUP_MECHANISMS


@dataclass(frozen=True, slots=True)
class Modifier:
    text: str
    name: str
    value: MacroString


@dataclass(frozen=True, slots=True)
class SpfRecord:
    text: str
    terms: tuple[Mechanism | Modifier, ...]
    redirect: Modifier | None = None
    exp: Modifier | None = None

    @property
    def mechanisms(self) -> tuple[Mechanism, ...]:
        return tuple(term for term in self.terms if isinstance(term, Mechanism))

    @property
    def all(self) -> Mechanism | None:
        return next((m for m in self.mechanisms if m.name == "all"), None)


def is_spf_record(text: str) -> bool:
    """Section 4.5: the version section "v=spf1", any case, ended by a space or the end of the record."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def _cidr(value: str | None, limit: int, term: str) -> int | None:
    if value is None:
        return None
    number = int(value)
    if number > limit:
        raise SpfSyntaxError(term, f"prefix length /{number} is over {limit}")
    return number


def _network(kind: str, address: str, length: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """ip4-network is four qnums without leading zeros; ip6-network is RFC 4291 text without a zone."""
    try:
        if kind == "ip4":
            if _IP4_NETWORK.fullmatch(address):
                return ipaddress.IPv4Network(f"{address}/{length}", strict=False)
        elif "%" not in address and "/" not in address:
            return ipaddress.IPv6Network(f"{address}/{length}", strict=False)
    except ValueError:
        return None
    return None


def _parse_mechanism(term: str) -> Mechanism:
    qualifier = "+"
    body = term
    if body[:1] in QUALIFIER_RESULT:
        qualifier, body = body[0], body[1:]
    match = _MECHANISM_NAME.fullmatch(body)
    name = match.group(1).lower() if match else ""
    if name not in _MECHANISMS or match is None:
        raise SpfSyntaxError(term, "unknown mechanism (section 5)")
    rest = match.group(2)
    if name == "all":
        if rest:
            raise SpfSyntaxError(term, "'all' takes no argument")
        return Mechanism(term, qualifier, name)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(term, f"'{name}' needs an address: {name}:<address>[/<prefix>]")
        address, slash, prefix = rest[1:].partition("/")
        limit = 32 if name == "ip4" else 128
        if slash and not re.fullmatch(r"0|[1-9][0-9]{0,2}", prefix):
            raise SpfSyntaxError(term, f"invalid prefix length '/{prefix}'")
        length = limit if not slash else _cidr(prefix, limit, term) or 0
        network = _network(name, address, length)
        if network is None:
            raise SpfSyntaxError(term, f"'{address}' is not an IPv{name[-1]} address")
        return Mechanism(term, qualifier, name, network=network)
    cidr4: int | None = None
    cidr6: int | None = None
    if name in ("a", "mx"):
        cidr = _DUAL_CIDR.search(rest)
        if cidr is not None and cidr.group(0):
            cidr4 = _cidr(cidr.group(1), 32, term)
            cidr6 = _cidr(cidr.group(2), 128, term)
            rest = rest[: cidr.start()]
    if not rest:
        if name in ("include", "exists"):
            raise SpfSyntaxError(term, f"'{name}' needs a domain: {name}:<domain>")
        return Mechanism(term, qualifier, name, cidr4=cidr4, cidr6=cidr6)
    if not rest.startswith(":"):
        raise SpfSyntaxError(term, f"unexpected '{rest}' after '{name}'")
    spec = _parse_domain_spec(rest[1:], term)
    return Mechanism(term, qualifier, name, domain_spec=spec, cidr4=cidr4, cidr6=cidr6)


def parse_record(text: str) -> SpfRecord:
    """Parse a whole record (section 4.6). Any syntax error anywhere makes the record a permerror."""
    if not is_spf_record(text):
        raise SpfSyntaxError(text[:20], "an SPF record starts with 'v=spf1'")
    terms: list[Mechanism | Modifier] = []
    redirect: Modifier | None = None
    exp: Modifier | None = None
    # Section 4.6.1: terms are separated by one or more SP; nothing else separates them.
    for raw in text[6:].split(" "):
        if not raw:
            continue
        modifier = _MODIFIER.fullmatch(raw)
        if modifier is not None:
            name = modifier.group(1).lower()
            value = modifier.group(2)
            if name in ("redirect", "exp"):
                parsed = Modifier(raw, name, _parse_domain_spec(value, raw))
                if (redirect if name == "redirect" else exp) is not None:
                    raise SpfSyntaxError(raw, f"'{name}' appears more than once (section 6)")
                if name == "redirect":
                    redirect = parsed
                else:
                    exp = parsed
            else:
                # Section 6: unknown modifiers are ignored, but must still be syntactically valid.
                parsed = Modifier(raw, name, parse_macro_string(value, term=raw))
            terms.append(parsed)
        else:
            terms.append(_parse_mechanism(raw))
    return SpfRecord(text, tuple(terms), redirect, exp)


def select_spf_records(records: Sequence[TxtRecord]) -> list[str]:
    """Section 4.5 (and 3.3): join each TXT record's strings without spaces, keep those that are SPF."""
    selected: list[str] = []
    for record in records:
        joined = b"".join(record)
        if joined[:6].lower() == b"v=spf1" and (len(joined) == 6 or joined[6:7] == b" "):
            selected.append(joined.decode("utf-8", errors="replace"))
    return selected


def format_txt_strings(text: str) -> str:
    """The record as zone-file character-strings, split to fit 255 bytes each (section 3.3)."""
    data = text.encode()
    chunks = [data[i : i + MAX_STRING_BYTES] for i in range(0, len(data), MAX_STRING_BYTES)] or [b""]
    return " ".join('"' + chunk.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)
