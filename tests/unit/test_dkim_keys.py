"""DKIM keys, TXT values and key-record parsing: pure functions, no DNS."""

from __future__ import annotations

import base64
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from postmaster.checks.dkim import (
    DkimRecordError,
    TagListError,
    generate_key,
    key_from_pem,
    key_type_of,
    parse_key_record,
    parse_tag_list,
    split_txt,
    txt_value,
    txt_value_for,
)


def small_rsa_p(bits: int, *, seed: int = 7) -> str:
    """The p= of an RSA public key of `bits` bits, below what `cryptography` will generate (for WeakKey)."""
    rng = random.Random(seed)

    def probably_prime(n: int) -> bool:
        if n % 2 == 0:
            return False
        d, s = n - 1, 0
        while d % 2 == 0:
            d, s = d // 2, s + 1
        for _ in range(32):
            x = pow(rng.randrange(2, n - 1), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def prime(size: int) -> int:
        while True:
            candidate = rng.getrandbits(size) | (1 << (size - 1)) | (1 << (size - 2)) | 1
            if probably_prime(candidate):
                return candidate

    n = prime(bits // 2) * prime(bits // 2)
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_rsa_key_round_trip_signs_and_verifies_with_the_published_p() -> None:
    key = generate_key("rsa", 2048)
    assert key.key_type == "rsa"
    assert key.bits == 2048
    assert key.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    public = serialization.load_der_public_key(base64.b64decode(key.p))
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    signature = private.sign(b"headers", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"headers", padding.PKCS1v15(), hashes.SHA256())  # raises if p= is not its key
    again = key_from_pem(key.private_key_pem)
    assert (again.p, again.bits, again.key_type) == (key.p, 2048, "rsa")


def test_ed25519_key_publishes_the_raw_32_byte_key() -> None:
    key = generate_key("ed25519")
    raw = base64.b64decode(key.p)
    assert len(raw) == 32
    assert key_type_of(key.p) == "ed25519"
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(private.sign(b"m"), b"m")
    assert key_from_pem(key.private_key_pem.encode()).p == key.p
    assert txt_value(key) == f"v=DKIM1; k=ed25519; p={key.p}"


def test_txt_value_and_key_type_inference() -> None:
    key = generate_key("rsa", 1024)
    assert txt_value(key) == f"v=DKIM1; k=rsa; p={key.p}"
    assert key_type_of(key.p) == "rsa"
    assert txt_value_for(key.p) == txt_value(key)
    spaced = key.p[:40] + " \t" + key.p[40:]
    assert txt_value_for(spaced).endswith("p=" + key.p)


def test_private_key_never_in_repr_and_bad_pem_says_nothing_of_it() -> None:
    key = generate_key("ed25519")
    assert "PRIVATE" not in repr(key)
    assert key.private_key_pem not in repr(key)
    secret_looking = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="not an unencrypted PEM private key") as caught:
        key_from_pem(secret_looking)
    assert "c2VjcmV0" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_generate_rejects_small_rsa_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="at least 1024"):
        generate_key("rsa", 512)
    with pytest.raises(ValueError, match="unknown DKIM key type"):
        generate_key("dsa", 1024)  # type: ignore[arg-type]


def test_split_txt_fits_255_bytes_and_joins_back() -> None:
    value = txt_value(generate_key("rsa", 2048))
    parts = split_txt(value)
    assert len(parts) == 2
    assert all(len(p.encode()) <= 255 for p in parts)
    assert len(parts[0].encode()) == 255
    assert "".join(parts) == value
    assert split_txt("a" * 255) == ["a" * 255]
    assert split_txt("a" * 256) == ["a" * 255, "a"]
    assert split_txt("") == [""]
    four_k = txt_value(generate_key("rsa", 4096))
    assert len(split_txt(four_k)) == 3


def test_split_txt_never_cuts_a_utf8_sequence() -> None:
    value = "n=" + "é" * 200
    parts = split_txt(value)
    assert "".join(parts) == value
    assert all(len(p.encode()) <= 255 for p in parts)
    assert len(parts[0].encode()) == 254  # 2 + 126 * 2; the next 2-byte character would cross 255


def test_parse_tag_list_whitespace_order_and_empty_segments() -> None:
    assert parse_tag_list(" v = DKIM1 ;k=rsa;; p=AB CD\r\n EF ;") == [
        ("v", "DKIM1"),
        ("k", "rsa"),
        ("p", "AB CD\r\n EF"),
    ]
    assert parse_tag_list("") == []


@pytest.mark.parametrize(
    ("text", "tag", "fragment"),
    [
        ("v=DKIM1; p=a; p=b", "p", "more than once"),
        ("v=DKIM1; 1x=a", None, "not a valid tag name"),
        ("v=DKIM1; justtext", None, "not a tag=value pair"),
        ("v=DKIM1; n=semi;colon=x;n=y", "n", "more than once"),
    ],
)
def test_parse_tag_list_errors(text: str, tag: str | None, fragment: str) -> None:
    with pytest.raises(TagListError, match=fragment) as caught:
        parse_tag_list(text)
    assert caught.value.tag == tag


def test_parse_key_record_reads_tags_and_key_size() -> None:
    key = generate_key("rsa", 2048)
    record = parse_key_record(f"v=DKIM1; h=sha256:sha1; k=rsa; s=email; t=y:s; n=hello; x=1; p={key.p}")
    assert (record.key_type, record.bits, record.testing) == ("rsa", 2048, True)
    assert record.hash_algorithms == ("sha256", "sha1")
    assert record.unknown_tags == ("x",)
    assert not record.revoked
    assert parse_key_record("p=").revoked
    assert parse_key_record(f"k=rsa; p={key.p}").bits == 2048  # v= is optional


def test_parse_key_record_accepts_pkcs1_rsa_public_key() -> None:
    """RFC 6376's text says RSAPublicKey; SubjectPublicKeyInfo is what everyone publishes. Both verify."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - size under test
    pkcs1 = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    assert parse_key_record("v=DKIM1; p=" + base64.b64encode(pkcs1).decode()).bits == 1024


@pytest.mark.parametrize(
    ("text", "tag", "fragment"),
    [
        ("k=rsa; v=DKIM1; p=AAAA", "v", "first tag"),
        ("v=DKIM2; p=AAAA", "v", "only version is DKIM1"),
        ("v=dkim1; p=AAAA", "v", "case-sensitive"),
        ("v=DKIM1; k=dsa; p=AAAA", "k", "unknown key type"),
        ("v=DKIM1; h=sha1; p=AAAA", "h", "does not allow sha256"),
        ("v=DKIM1; s=tlsrpt; p=AAAA", "s", "does not include email"),
        ("v=DKIM1; k=rsa", "p", "missing"),
        ("v=DKIM1; p=!!!notbase64", "p", "not valid base64"),
        ("v=DKIM1; k=ed25519; p=" + base64.b64encode(b"x" * 31).decode(), "p", "31 bytes"),
        ("v=DKIM1; p=" + base64.b64encode(b"x" * 32).decode(), "k", "add k=ed25519"),
        ("v=DKIM1; k=rsa; p=" + base64.b64encode(b"not a der key at all").decode(), "p", "not a DER-encoded RSA"),
    ],
)
def test_parse_key_record_errors_name_the_tag(text: str, tag: str, fragment: str) -> None:
    with pytest.raises(DkimRecordError, match=fragment) as caught:
        parse_key_record(text)
    assert caught.value.tag == tag


def test_parse_key_record_rejects_non_rsa_key_under_k_rsa() -> None:
    ec = ed25519.Ed25519PrivateKey.generate().public_key()
    spki = ec.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(DkimRecordError, match="not RSA"):
        parse_key_record("v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode())


def test_small_rsa_helper_really_builds_a_512_bit_key() -> None:
    assert parse_key_record("v=DKIM1; p=" + small_rsa_p(512)).bits == 512
