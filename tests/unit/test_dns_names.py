"""Pure parts of the DNS layer: nameserver and domain name parsing."""

from __future__ import annotations

import pytest

from postmaster.checks.dns import Answer, InvalidDomainNameError, Nameserver, Status, normalize_name, parse_nameserver


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", Nameserver("127.0.0.1", 53)),
        ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
        ("::1", Nameserver("::1", 53)),
        ("[::1]:5353", Nameserver("::1", 5353)),
        ("[::1]", Nameserver("::1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["ns1.example.com", "127.0.0.1:0", "127.0.0.1:70000", "[::1]5353", "1.2.3:53"])
def test_parse_nameserver_refuses_what_is_not_address_and_port(text: str) -> None:
    with pytest.raises(ValueError, match="nameserver"):
        parse_nameserver(text)


def test_nameserver_prints_as_host_port() -> None:
    assert str(Nameserver("::1", 5353)) == "[::1]:5353"
    assert str(Nameserver("127.0.0.1", 53)) == "127.0.0.1:53"


def test_normalize_name_lowercases_and_drops_the_final_dot() -> None:
    assert normalize_name("Mail.Example.COM.") == "mail.example.com"


@pytest.mark.parametrize("name", ["", ".", "a..example.com", "x" * 64 + ".example.com", ("a" * 60 + ".") * 5])
def test_normalize_name_refuses_what_dns_cannot_carry(name: str) -> None:
    with pytest.raises(InvalidDomainNameError):
        normalize_name(name)


def test_answer_canonical_name_is_the_end_of_the_alias_chain() -> None:
    plain: Answer[str] = Answer("a.example", Status.FOUND, ("x",))
    aliased: Answer[str] = Answer("a.example", Status.FOUND, ("x",), cname_chain=("a.example", "b.example"))
    assert plain.canonical_name == "a.example"
    assert aliased.canonical_name == "b.example"
    assert Answer("a.example", Status.NODATA).is_void
