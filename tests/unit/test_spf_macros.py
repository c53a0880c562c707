"""The macro language of RFC 7208 section 7, through check_host() with the in-memory resolver."""

from __future__ import annotations

import pytest

from postmaster.checks.spf import SpfResultCode, SpfSyntaxError, check_host, parse_macro_string
from tests.fixtures.dns import InMemoryDns

SENDER = "strong-bad@email.example.com"


async def expand(
    macro: str,
    ip: str = "192.0.2.3",
    sender: str = SENDER,
    *,
    domain: str = "email.example.com",
    helo: str = "mx.example.org",
) -> str:
    """Expand `macro` by watching the name an exists: term asks for."""
    dns = InMemoryDns().add(domain, "TXT", f"v=spf1 exists:{macro}.probe.invalid -all")
    await check_host(ip, domain, sender, helo=helo, resolver=dns)
    asked = [name for name, rdtype in dns.asked if rdtype == "A"]
    assert len(asked) == 1, dns.asked
    return asked[0].removesuffix(".probe.invalid")


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ],
)
async def test_7_4_expansion_examples_ipv4(macro: str, expansion: str) -> None:
    assert await expand(macro) == expansion.lower()


async def test_7_4_expansion_example_ipv6() -> None:
    got = await expand("%{ir}.%{v}._spf.%{d2}", ip="2001:db8::cb01")
    assert got == "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"


async def test_7_3_h_is_the_helo_name() -> None:
    assert await expand("%{h}") == "mx.example.org"


async def test_7_3_uppercase_macro_is_url_escaped() -> None:
    # '+' and '=' are outside RFC 3986's unreserved set; '-', '.', '_' and '~' are inside it.
    assert await expand("%{L}", sender="a+b=c-d_e~f@email.example.com") == "a%2bb%3dc-d_e~f"
    assert await expand("%{l}", sender="a+b=c-d_e~f@email.example.com") == "a+b=c-d_e~f"


async def test_7_3_delimiters_split_on_any_of_them() -> None:
    assert await expand("%{l+-}", sender="a-b+c@email.example.com") == "a.b.c"
    assert await expand("%{l2r+-}", sender="a-b+c@email.example.com") == "b.a"


async def test_7_3_digits_beyond_the_parts_keep_them_all() -> None:
    assert await expand("%{d9}") == "email.example.com"


@pytest.mark.parametrize(("escape", "text"), [("%%", "%"), ("%_", " "), ("%-", "%20")])
def test_7_1_percent_escapes(escape: str, text: str) -> None:
    assert parse_macro_string(f"a{escape}b").tokens == (f"a{text}b",)


async def test_7_3_truncates_names_over_253_characters_from_the_left() -> None:
    local = ".".join(["x" * 60] * 4)  # 243 characters
    got = await expand("%{l}.%{d}", sender=f"{local}@email.example.com")
    assert len(got + ".probe.invalid") <= 253
    assert got.endswith("email.example.com")


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 exists:%(ir).sbl.example.org -all",  # section 7.1's own example of a syntax error
        "v=spf1 exists:%{x}.example.org -all",
        "v=spf1 exists:%{d0}.example.org -all",  # digits must be nonzero
        "v=spf1 exists:%{d.example.org -all",
        "v=spf1 exists:%.example.org -all",
        "v=spf1 a:%{c}.example.org -all",  # c, r and t only in exp text (section 7.2)
        "v=spf1 a:%{r}.example.org -all",
        "v=spf1 a:%{t}.example.org -all",
    ],
)
async def test_7_1_malformed_macro_is_permerror(record: str) -> None:
    dns = InMemoryDns().add("example.com", "TXT", record)
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is SpfResultCode.PERMERROR


def test_7_2_c_r_t_are_allowed_in_explain_strings() -> None:
    parsed = parse_macro_string("%{c} %{r} %{t} %{C}", explain=True)
    assert parsed.has_macros
    with pytest.raises(SpfSyntaxError):
        parse_macro_string("%{c}")


async def test_7_3_p_prefers_the_domain_itself_then_a_subdomain() -> None:
    dns = InMemoryDns().add("example.com", "TXT", "v=spf1 exists:%{p}.ok.example.net -all")
    dns.add_ptr("192.0.2.1", "other.example.org", "mx.example.com", "example.com")
    for name in ("other.example.org", "mx.example.com", "example.com"):
        dns.add(name, "A", "192.0.2.1")
    await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert ("example.com.ok.example.net", "A") in dns.asked

    dns = InMemoryDns().add("example.com", "TXT", "v=spf1 exists:%{p}.ok.example.net -all")
    dns.add_ptr("192.0.2.1", "other.example.org", "mx.example.com")
    for name in ("other.example.org", "mx.example.com"):
        dns.add(name, "A", "192.0.2.1")
    await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert ("mx.example.com.ok.example.net", "A") in dns.asked


async def test_7_3_p_without_a_validated_name_is_unknown() -> None:
    dns = InMemoryDns().add("example.com", "TXT", "v=spf1 exists:%{p}.ok.example.net -all")
    dns.add_ptr("192.0.2.1", "liar.example.com").add("liar.example.com", "A", "198.51.100.1")
    await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert ("unknown.ok.example.net", "A") in dns.asked


async def test_4_6_4_p_macro_counts_as_a_lookup() -> None:
    dns = InMemoryDns().add("example.com", "TXT", "v=spf1 exists:%{p}.ok.example.net -all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.dns_lookups == 2  # the exists term and the PTR query behind %{p}
