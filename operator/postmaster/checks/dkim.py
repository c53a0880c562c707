"""DKIM keys: generation, the TXT records that publish them, and whether the world serves them.

Keys (RFC 6376 section 3.6.1, RFC 8463):

* `generate_key("rsa", bits=2048)` or `generate_key("ed25519")` returns a `DkimKey`: the private key as
  unencrypted PKCS#8 PEM (for the Secret; never in `repr`) and the ``p=`` value. For RSA ``p=`` is the
  base64 DER SubjectPublicKeyInfo; for Ed25519 it is the base64 of the raw 32-byte public key (RFC 8463
  section 4.2). `key_from_pem(pem)` recomputes the same from a stored private key.
* `txt_value(key)` is the record's text (``v=DKIM1; k=rsa; p=...``); `split_txt(text)` cuts it into
  character-strings of at most 255 bytes, the most one string holds (RFC 1035 section 3.3). A 2048-bit
  RSA record needs two.

Checking a selector, `check_selector(domain, selector, expected_p=..., resolver=...)`, reads the TXT
record at ``<selector>._domainkey.<domain>`` (following CNAMEs, as provider-managed selectors are
CNAMEs to the provider's own names), joins its strings, parses its tag-list and returns a
`SelectorVerdict`. Reasons (`DkimReason`):

* ``Published`` (True): one valid key record; with `expected_p`, the same key as the Secret's.
* ``RecordMissing``: no TXT record at the name (or at the end of its CNAME chain).
* ``MultipleRecords``: more than one TXT record; RFC 6376 section 3.6.2.2 leaves the result undefined.
* ``KeyMismatch``: the published key differs from `expected_p` (the key in the Secret).
* ``KeyRevoked``: an empty ``p=``, which RFC 6376 section 3.6.1 defines as a revoked key.
* ``InvalidRecord``: a tag-list that does not parse, a duplicate tag, ``v=`` other than ``DKIM1`` or not
  first, an unknown ``k=``, ``h=`` without sha256, ``s=`` without email, a ``p=`` that is not a key of
  its type.
* ``WeakKey``: an RSA key under 1024 bits, which verifiers must not accept (RFC 8301 section 3.2).
  1024 up to 2047 bits is still ``Published`` (True), with a warning in the message: RFC 8301 asks
  signers for 2048 bits, but verifiers accept 1024.
* ``DNSTimeout`` / ``DNSServerFailure`` (Unknown): no answer this time.

Without `expected_p` (provider-managed keys) the check accepts any valid key of adequate size and names
the CNAME target it reached. `check_dkim(domain, selectors, resolver=...)` checks several selectors at
once and folds them into one `DkimVerdict` for the ``DKIMReady`` condition.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postmaster.checks.dns import DnsLookup, DnsTransientError, Status, TxtRecord
from postmaster.checks.spf import format_txt_strings
from postmaster.checks.verdict import ConditionStatus, status_for
from postmaster.providers.catalog import preset_entry

__all__ = [
    "MAX_STRING_BYTES",
    "MIN_RSA_BITS",
    "RECOMMENDED_RSA_BITS",
    "DkimKey",
    "DkimKeyRecord",
    "DkimReason",
    "DkimRecordError",
    "DkimSelector",
    "DkimVerdict",
    "KeyType",
    "SelectorVerdict",
    "TagListError",
    "check_dkim",
    "check_selector",
    "generate_key",
    "key_from_pem",
    "key_type_of",
    "parse_key_record",
    "parse_tag_list",
    "provider_cname_target",
    "selector_name",
    "split_txt",
    "txt_value",
    "txt_value_for",
]

KeyType = Literal["rsa", "ed25519"]

MAX_STRING_BYTES = 255
"""RFC 1035 section 3.3: one TXT character-string."""
MIN_RSA_BITS = 1024
"""RFC 8301 section 3.2: verifiers must not accept smaller RSA keys. Below this: ``WeakKey``, False."""
RECOMMENDED_RSA_BITS = 2048
"""RFC 8301 section 3.2: what signers should use. From `MIN_RSA_BITS` up to this: a warning, still True."""
ED25519_KEY_BYTES = 32


# --------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A signing key and what DNS publishes for it. `private_key_pem` belongs in a Secret only."""

    key_type: KeyType
    p: str
    """The ``p=`` value: base64, no whitespace."""
    bits: int
    """RSA modulus size; 256 for Ed25519."""
    private_key_pem: str = field(repr=False)
    """Unencrypted PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``)."""

    @property
    def txt_value(self) -> str:
        return txt_value_for(self.p, self.key_type)


def generate_key(key_type: KeyType = "rsa", bits: int = RECOMMENDED_RSA_BITS) -> DkimKey:
    """A new key. RSA keys are `bits` long (at least 1024, default 2048); `bits` is ignored for Ed25519."""
    if key_type == "rsa":
        if bits < MIN_RSA_BITS:
            raise ValueError(f"RSA DKIM keys must be at least {MIN_RSA_BITS} bits (RFC 8301); got {bits}")
        private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=bits
        )
    elif key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM key type {key_type!r}: rsa or ed25519")
    return _key_of(private)


def key_from_pem(pem: str | bytes) -> DkimKey:
    """The `DkimKey` of a stored private key (PKCS#8 or traditional PEM, unencrypted)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The cause is not chained: nothing of the key's text may reach a message or a log.
        raise ValueError("not an unencrypted PEM private key (PKCS#8 or traditional RSA)") from None
    if not isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("DKIM keys are RSA or Ed25519 (RFC 6376, RFC 8463)")  # noqa: TRY004 - a bad value, not a bad type
    return _key_of(private)


def _key_of(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> DkimKey:
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    if isinstance(private, rsa.RSAPrivateKey):
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKey("rsa", base64.b64encode(der).decode(), private.key_size, pem)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return DkimKey("ed25519", base64.b64encode(raw).decode(), 256, pem)


def txt_value_for(p: str, key_type: KeyType | None = None) -> str:
    """``v=DKIM1; k=<type>; p=<p>``; the type is read from `p` when not given (`key_type_of`)."""
    kind = key_type or key_type_of(p)
    return f"v=DKIM1; k={kind}; p={_compact(p)}"


def txt_value(key: DkimKey) -> str:
    """The TXT record text that publishes `key`."""
    return txt_value_for(key.p, key.key_type)


def key_type_of(p: str) -> KeyType:
    """Ed25519 when `p` decodes to exactly 32 bytes (no RSA key is that short), else RSA."""
    try:
        raw = base64.b64decode(_compact(p), validate=True)
    except binascii.Error:
        return "rsa"
    return "ed25519" if len(raw) == ED25519_KEY_BYTES else "rsa"


def split_txt(value: str, limit: int = MAX_STRING_BYTES) -> list[str]:
    """`value` cut into character-strings of at most `limit` bytes; receivers join them without spaces."""
    data = value.encode()
    if not data:
        return [""]
    chunks: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        # Never cut a UTF-8 sequence (DKIM values are ASCII; n= notes need not be).
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        chunks.append(data[start:end].decode())
        start = end
    return chunks


def selector_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def _compact(p: str) -> str:
    return re.sub(r"\s+", "", p)


# --------------------------------------------------------------------------------------------------
# Tag lists (RFC 6376 section 3.2) and key records (section 3.6.1)
# --------------------------------------------------------------------------------------------------


class TagListError(ValueError):
    """A tag-list RFC 6376 section 3.2 does not allow; `tag` names the offending tag when there is one."""

    def __init__(self, detail: str, tag: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.tag = tag


_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_TAG_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]+(?:[ \t\r\n]+[\x21-\x3a\x3c-\x7e]+)*|")


def parse_tag_list(text: str) -> list[tuple[str, str]]:
    """``name=value`` pairs in order, whitespace around names and values removed.

    Tag names are case-sensitive; a repeated name makes the whole list invalid (section 3.2). Empty
    segments (``;;`` or a trailing ``;``) are tolerated, as verifiers do.
    """
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in text.split(";"):
        segment = raw.strip(" \t\r\n")
        if not segment:
            continue
        name, equals, value = segment.partition("=")
        name = name.strip(" \t\r\n")
        value = value.strip(" \t\r\n")
        if not equals:
            raise TagListError(f"'{segment}' is not a tag=value pair")
        if not _TAG_NAME.fullmatch(name):
            raise TagListError(f"'{name}' is not a valid tag name (a letter, then letters, digits or '_')")
        if not _TAG_VALUE.fullmatch(value):
            raise TagListError(f"the value of {name}= holds characters a tag value may not", name)
        if name in seen:
            raise TagListError(f"tag {name}= appears more than once; the whole record is then invalid", name)
        seen.add(name)
        tags.append((name, value))
    return tags


class DkimRecordError(ValueError):
    """A key record verifiers would not use."""

    def __init__(self, detail: str, tag: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.tag = tag


@dataclass(frozen=True, slots=True)
class DkimKeyRecord:
    """A parsed DKIM key record (RFC 6376 section 3.6.1, RFC 8463)."""

    text: str
    key_type: str
    p: str
    """Base64 with whitespace removed; empty for a revoked key."""
    bits: int | None = None
    """The RSA modulus size, or 256 for Ed25519; None for a revoked key."""
    testing: bool = False
    """``t=y``: the domain is testing DKIM (section 3.6.1); verifiers may treat failures leniently."""
    hash_algorithms: tuple[str, ...] = ()
    unknown_tags: tuple[str, ...] = ()

    @property
    def revoked(self) -> bool:
        return not self.p


def parse_key_record(text: str) -> DkimKeyRecord:
    """Parse and validate a key record; raises `DkimRecordError` naming the tag at fault."""
    try:
        tags = parse_tag_list(text)
    except TagListError as exc:
        raise DkimRecordError(exc.detail, exc.tag) from exc
    values = dict(tags)
    if "v" in values:
        if tags[0][0] != "v":
            raise DkimRecordError("v= must be the first tag when present", "v")
        if values["v"] != "DKIM1":
            raise DkimRecordError(f"v={values['v']}: the only version is DKIM1 (case-sensitive)", "v")
    key_type = values.get("k", "rsa")
    if key_type not in ("rsa", "ed25519"):
        raise DkimRecordError(f"k={key_type}: unknown key type; verifiers ignore the key (rsa or ed25519)", "k")
    hashes: tuple[str, ...] = ()
    if "h" in values:
        hashes = tuple(h.strip() for h in values["h"].split(":"))
        if "sha256" not in hashes:
            raise DkimRecordError(
                f"h={values['h']} does not allow sha256, so rsa-sha256 and ed25519-sha256 signatures fail "
                "(RFC 8301 forbids sha1); remove h= or include sha256",
                "h",
            )
    if "s" in values:
        services = {s.strip() for s in values["s"].split(":")}
        if not services & {"*", "email"}:
            raise DkimRecordError(f"s={values['s']} does not include email or *; the key does not apply to mail", "s")
    flags = {f.strip() for f in values.get("t", "").split(":")}
    if "p" not in values:
        raise DkimRecordError("the p= tag (the public key) is missing", "p")
    p = _compact(values["p"])
    known = {"v", "h", "k", "n", "p", "s", "t"}
    unknown = tuple(name for name, _ in tags if name not in known)
    if not p:
        return DkimKeyRecord(text, key_type, "", None, "y" in flags, hashes, unknown)
    bits = _key_bits(p, key_type)
    return DkimKeyRecord(text, key_type, p, bits, "y" in flags, hashes, unknown)


def _decode_p(p: str) -> bytes:
    try:
        return base64.b64decode(p, validate=True)
    except binascii.Error as exc:
        raise DkimRecordError(f"p= is not valid base64 ({exc})", "p") from exc


def _key_bits(p: str, key_type: str) -> int:
    raw = _decode_p(p)
    if key_type == "ed25519":
        if len(raw) != ED25519_KEY_BYTES:
            raise DkimRecordError(
                f"k=ed25519 needs p= to be the raw 32-byte public key in base64 (RFC 8463); it holds {len(raw)} bytes",
                "p",
            )
        return 256
    if len(raw) == ED25519_KEY_BYTES:
        raise DkimRecordError(
            "p= holds a 32-byte Ed25519 key but the record says (or defaults to) k=rsa; add k=ed25519", "k"
        )
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DkimRecordError("p= is not a DER-encoded RSA public key", "p") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise DkimRecordError("p= holds a public key that is not RSA, but the record says k=rsa", "p")
    return key.key_size


def _key_identity(p: str) -> tuple[str, object] | None:
    """What makes two ``p=`` values the same key: RSA (n, e) whatever the DER wrapping; Ed25519 bytes."""
    try:
        raw = base64.b64decode(_compact(p), validate=True)
    except binascii.Error:
        return None
    if len(raw) == ED25519_KEY_BYTES:
        return ("ed25519", raw)
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return ("rsa", (numbers.n, numbers.e))
    return None


def _same_key(published: str, expected: str) -> bool:
    left, right = _key_identity(published), _key_identity(expected)
    if left is None or right is None:
        return _compact(published) == _compact(expected)
    return left == right


# --------------------------------------------------------------------------------------------------
# Provider-managed selectors
# --------------------------------------------------------------------------------------------------


def provider_cname_target(preset: str | None, selector: str, domain: str) -> str | None:
    """The CNAME target a provider documents for `selector`, with placeholders for account-specific parts.

    A hint for people (status and CLI), never compared: the real target comes from the provider's console. The
    templates are data, the `dkimCnameTarget` of each preset in ``providers/catalog.yaml``; None for a preset without
    one, for an unknown preset and for none.
    """
    if preset is None:
        return None
    try:
        entry = preset_entry(preset)
    except ValueError:  # not a preset the catalog knows
        return None
    return entry.dkim_cname_target_for(selector, domain)


# --------------------------------------------------------------------------------------------------
# Checking a selector
# --------------------------------------------------------------------------------------------------


class DkimReason(StrEnum):
    """Reasons of the `DKIMReady` condition and of each selector's verdict. Stable: they are API."""

    PUBLISHED = "Published"
    RECORD_MISSING = "RecordMissing"
    MULTIPLE_RECORDS = "MultipleRecords"
    KEY_MISMATCH = "KeyMismatch"
    KEY_REVOKED = "KeyRevoked"
    INVALID_RECORD = "InvalidRecord"
    WEAK_KEY = "WeakKey"
    NO_SELECTORS = "NoSelectors"
    DNS_TIMEOUT = "DNSTimeout"
    DNS_SERVER_FAILURE = "DNSServerFailure"


@dataclass(frozen=True, slots=True)
class DkimSelector:
    """One selector to check.

    `expected_p` is the ``p=`` of the key in the Secret (operator-managed keys); None for provider-managed
    ones, which only need to be a valid key of adequate size. `required` is False for a rotation's next
    key, which is reported but does not decide ``DKIMReady`` while another key is active.
    `cname_target` is the CNAME target to show people when a provider-managed selector is missing.
    """

    selector: str
    expected_p: str | None = None
    required: bool = True
    cname_target: str | None = None


@dataclass(frozen=True, slots=True)
class SelectorVerdict:
    """What the world serves for one selector."""

    domain: str
    selector: str
    reason: DkimReason
    status: ConditionStatus
    message: str
    name: str
    """The name asked: ``<selector>._domainkey.<domain>``."""
    record: str | None = None
    """The TXT record found, strings joined."""
    cname_chain: tuple[str, ...] = ()
    """The names passed through when `name` is an alias, `name` first and the target last."""
    key_type: str | None = None
    key_bits: int | None = None
    expected_p: str | None = None
    required: bool = True
    warnings: tuple[str, ...] = ()
    cname_hint: str | None = None
    """The provider-documented target the check was given (`DkimSelector.cname_target`), for people."""

    @property
    def ready(self) -> bool:
        return self.reason is DkimReason.PUBLISHED

    @property
    def cname_target(self) -> str | None:
        return self.cname_chain[-1] if self.cname_chain else None

    @property
    def provider_managed(self) -> bool:
        return self.expected_p is None

    def as_dict(self) -> dict[str, object]:
        return {
            "selector": self.selector,
            "name": self.name,
            "reason": self.reason.value,
            "status": self.status,
            "message": self.message,
            "record": self.record,
            "cnameTarget": self.cname_target,
            "keyType": self.key_type,
            "keyBits": self.key_bits,
            "required": self.required,
            "warnings": list(self.warnings),
        }


async def check_selector(
    domain: str,
    selector: str,
    *,
    expected_p: str | None,
    resolver: DnsLookup,
    required: bool = True,
    cname_target: str | None = None,
) -> SelectorVerdict:
    """Does DNS serve a usable key at ``<selector>._domainkey.<domain>`` (and the Secret's key, if given)?"""
    return await _SelectorCheck(
        domain=domain.lower().rstrip("."),
        selector=selector.lower(),
        expected_p=_compact(expected_p) if expected_p is not None else None,
        lookup=resolver,
        required=required,
        cname_target=cname_target,
    ).run()


@dataclass
class _SelectorCheck:
    domain: str
    selector: str
    expected_p: str | None
    lookup: DnsLookup
    required: bool
    cname_target: str | None
    record: str | None = None
    chain: tuple[str, ...] = ()
    parsed: DkimKeyRecord | None = None

    @property
    def name(self) -> str:
        return selector_name(self.selector, self.domain)

    @property
    def where(self) -> str:
        if self.chain:
            return f"{self.name} (a CNAME to {self.chain[-1]})"
        return self.name

    def verdict(self, reason: DkimReason, message: str, warnings: Sequence[str] = ()) -> SelectorVerdict:
        parsed = self.parsed
        return SelectorVerdict(
            domain=self.domain,
            selector=self.selector,
            reason=reason,
            status=status_for(reason.value, ready=reason is DkimReason.PUBLISHED),
            message=message,
            name=self.name,
            record=self.record,
            cname_chain=self.chain,
            key_type=parsed.key_type if parsed else None,
            key_bits=parsed.bits if parsed else None,
            expected_p=self.expected_p,
            required=self.required,
            warnings=tuple(warnings),
            cname_hint=self.cname_target,
        )

    def publish_hint(self) -> str:
        """What to publish, in zone-file form, when the key is known; else how to get the provider's target."""
        if self.expected_p is not None:
            value = txt_value_for(self.expected_p)
            return f"Publish this TXT record at {self.name}: {format_txt_strings(value)}"
        target = self.cname_target or "the target shown in your mail provider's DKIM settings"
        return (
            f"Publish {self.name} as a CNAME to {target} and turn DKIM signing on in the provider's console "
            f"for {self.domain}"
        )

    async def run(self) -> SelectorVerdict:
        try:
            answer = await self.lookup.txt(self.name)
        except DnsTransientError as exc:
            reason = DkimReason.DNS_TIMEOUT if exc.reason == "DNSTimeout" else DkimReason.DNS_SERVER_FAILURE
            return self.verdict(
                reason, f"Could not read the DKIM key for selector {self.selector} ({exc}); will retry."
            )
        self.chain = answer.cname_chain
        if not answer.records:
            if self.chain:
                found = "does not exist" if answer.status is Status.NXDOMAIN else "has no TXT record"
                missing = f"{self.name} is a CNAME to {self.chain[-1]}, which {found}"
            else:
                missing = f"There is no DKIM key for selector {self.selector} at {self.name} ({answer.status.value})"
            return self.verdict(DkimReason.RECORD_MISSING, f"{missing}. {self.publish_hint()}.")
        if len(answer.records) > 1:
            texts = " and ".join(f'"{_joined(r)}"' for r in answer.records)
            return self.verdict(
                DkimReason.MULTIPLE_RECORDS,
                f"{self.where} holds {len(answer.records)} TXT records ({_shorten(texts)}); a selector must hold "
                f"exactly one key (RFC 6376 section 3.6.2.2). Remove all but one. {self.publish_hint()}.",
            )
        self.record = text = _joined(answer.records[0])
        try:
            self.parsed = parsed = parse_key_record(text)
        except DkimRecordError as exc:
            return self.verdict(
                DkimReason.INVALID_RECORD,
                f"The DKIM record of selector {self.selector} at {self.where} is invalid: {exc.detail}. "
                f"Verifiers cannot use it. {self.publish_hint()}.",
            )
        if parsed.revoked:
            return self.verdict(
                DkimReason.KEY_REVOKED,
                f"The DKIM record of selector {self.selector} at {self.where} has an empty p=, which revokes "
                f"the key (RFC 6376 section 3.6.1): signatures with it fail. {self.publish_hint()}.",
            )
        if self.expected_p is not None and not _same_key(parsed.p, self.expected_p):
            return self.verdict(
                DkimReason.KEY_MISMATCH,
                f"Selector {self.selector} at {self.where} publishes a different public key than the one the "
                f"operator signs with (from its Secret), so signatures with selector {self.selector} fail. "
                f"Replace the record: {format_txt_strings(txt_value_for(self.expected_p))}",
            )
        warnings = self.warnings(parsed)
        key = f"{parsed.key_type} {parsed.bits}-bit" if parsed.key_type == "rsa" else "ed25519"
        if parsed.key_type == "rsa" and parsed.bits is not None and parsed.bits < MIN_RSA_BITS:
            return self.verdict(
                DkimReason.WEAK_KEY,
                f"Selector {self.selector} at {self.where} publishes a {key} key; verifiers reject RSA keys "
                f"under {MIN_RSA_BITS} bits (RFC 8301 section 3.2), so its signatures count as failures. "
                + (
                    f"Generate a {RECOMMENDED_RSA_BITS}-bit key and publish it."
                    if self.expected_p is not None
                    else f"Rotate the key to {RECOMMENDED_RSA_BITS} bits in the provider's console."
                ),
            )
        via = f" through the CNAME to {self.chain[-1]}" if self.chain else ""
        matches = " (the key in the Secret)" if self.expected_p is not None else ""
        message = f"Selector {self.selector} publishes a valid {key} key{matches} at {self.name}{via}."
        if warnings:
            message += " Note: " + " ".join(warnings)
        return self.verdict(DkimReason.PUBLISHED, message, warnings)

    def warnings(self, parsed: DkimKeyRecord) -> list[str]:
        notes: list[str] = []
        if parsed.key_type == "rsa" and parsed.bits is not None and MIN_RSA_BITS <= parsed.bits < RECOMMENDED_RSA_BITS:
            notes.append(
                f"the key has {parsed.bits} bits; RFC 8301 asks for at least {RECOMMENDED_RSA_BITS}, and some "
                f"receivers already distrust {parsed.bits}-bit keys: rotate to a {RECOMMENDED_RSA_BITS}-bit key."
            )
        if parsed.testing:
            notes.append("t=y marks the domain as testing DKIM; remove t=y once signing works.")
        if self.expected_p is None and not self.chain:
            notes.append(
                f"{self.name} is a TXT record, not a CNAME to the provider: if the provider rotates its key, "
                "this copy goes stale."
            )
        return notes


def _joined(record: TxtRecord) -> str:
    """RFC 6376 section 3.6.2.2: the strings of one TXT record are concatenated without separators."""
    return b"".join(record).decode("utf-8", errors="replace")


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# All of a domain's selectors: the DKIMReady condition
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DkimVerdict:
    """The ``DKIMReady`` condition of a domain: every required selector serves a usable key.

    When no selector is required (a domain's very first key, still pending), the pending ones decide.
    A ``False`` selector decides the reason before an ``Unknown`` one; the message names every selector
    that is not ready, and reports the pending (not yet required) ones.
    """

    domain: str
    reason: DkimReason
    status: ConditionStatus
    message: str
    selectors: tuple[SelectorVerdict, ...] = ()

    @property
    def ready(self) -> bool:
        return self.status == "True"

    @property
    def served_selectors(self) -> frozenset[str]:
        """Selectors whose key the world serves (and, for operator keys, the Secret's): rotation's input."""
        return frozenset(v.selector for v in self.selectors if v.ready)

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason.value,
            "status": self.status,
            "message": self.message,
            "selectors": [v.as_dict() for v in self.selectors],
        }


def _selector_of(item: DkimSelector | tuple[str, str | None] | str) -> DkimSelector:
    if isinstance(item, DkimSelector):
        return item
    if isinstance(item, str):
        return DkimSelector(item)
    selector, expected = item
    return DkimSelector(selector, expected)


async def check_dkim(
    domain: str,
    selectors: Sequence[DkimSelector | tuple[str, str | None] | str],
    *,
    resolver: DnsLookup,
) -> DkimVerdict:
    """Check every selector at once and fold the results into the ``DKIMReady`` verdict."""
    name = domain.lower().rstrip(".")
    wanted = [_selector_of(item) for item in selectors]
    if not wanted:
        return DkimVerdict(
            name,
            DkimReason.NO_SELECTORS,
            "False",
            f"No DKIM selector is configured for {name}, so nothing signs its mail with an aligned key. "
            "List the selectors (a provider-managed preset names its own; for Amazon SES they are the three "
            "tokens in the SES console) or let the operator generate a key.",
        )
    verdicts = tuple(
        await asyncio.gather(
            *(
                check_selector(
                    name,
                    s.selector,
                    expected_p=s.expected_p,
                    resolver=resolver,
                    required=s.required,
                    cname_target=s.cname_target,
                )
                for s in wanted
            )
        )
    )
    return fold_selectors(name, verdicts)


def fold_selectors(domain: str, verdicts: tuple[SelectorVerdict, ...]) -> DkimVerdict:
    deciding = [v for v in verdicts if v.required] or list(verdicts)
    others = [v for v in verdicts if v not in deciding]
    failing = [v for v in deciding if v.status == "False"]
    unknown = [v for v in deciding if v.status == "Unknown"]
    pending_notes = [
        f"Next key {v.selector}: {'published' if v.ready else 'not served yet'}"
        + ("." if v.ready else f" ({v.reason.value}); it becomes active once DNS serves it. {v.message}")
        for v in others
    ]
    if failing or unknown:
        first = (failing or unknown)[0]
        message = " ".join(v.message for v in [*failing, *unknown])
        return DkimVerdict(domain, first.reason, first.status, " ".join([message, *pending_notes]), verdicts)
    summary = " ".join(v.message for v in deciding)
    return DkimVerdict(domain, DkimReason.PUBLISHED, "True", " ".join([summary, *pending_notes]), verdicts)
