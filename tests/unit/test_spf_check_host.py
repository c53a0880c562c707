"""check_host() against RFC 7208 sections 4 to 6, with the in-memory resolver. Test names cite the section."""

from __future__ import annotations

import pytest

from postmaster.checks.spf import ProblemKind, SpfResultCode, check_host
from tests.fixtures.dns import InMemoryDns

PASS = SpfResultCode.PASS
FAIL = SpfResultCode.FAIL
SOFTFAIL = SpfResultCode.SOFTFAIL
NEUTRAL = SpfResultCode.NEUTRAL
NONE = SpfResultCode.NONE
PERMERROR = SpfResultCode.PERMERROR
TEMPERROR = SpfResultCode.TEMPERROR


def spf(record: str, **more: str) -> InMemoryDns:
    """example.com publishing `record`; keywords publish more TXT records ('_' for '.', '__' for '._')."""
    dns = InMemoryDns().add("example.com", "TXT", record)
    for key, text in more.items():
        lead = "_" if key.startswith("_") else ""
        name = lead + key.removeprefix("_").replace("__", "\0").replace("_", ".").replace("\0", "._")
        dns.add(name, "TXT", text)
    return dns


async def run(
    dns: InMemoryDns, ip: str = "192.0.2.1", domain: str = "example.com", sender: str = "", **kwargs: object
) -> SpfResultCode:
    result = await check_host(ip, domain, sender or f"user@{domain}", resolver=dns, **kwargs)  # type: ignore[arg-type]
    return result.result


# -- 4.3 initial processing ------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["localhost", "a..example.com", "x" * 64 + ".example.com", ".example.com"])
async def test_4_3_malformed_or_single_label_domain_is_none(domain: str) -> None:
    dns = InMemoryDns().add(domain.strip("."), "TXT", "v=spf1 +all")
    assert await run(dns, domain=domain) is NONE
    assert dns.asked == []


async def test_4_3_nxdomain_is_none() -> None:
    result = await check_host("192.0.2.1", "nowhere.example", "a@nowhere.example", resolver=InMemoryDns())
    assert result.result is NONE
    assert result.problem is None


async def test_4_3_sender_without_local_part_becomes_postmaster() -> None:
    dns = spf("v=spf1 exists:%{l}.%{o}.allow.example.com -all").add(
        "postmaster.example.com.allow.example.com", "A", "127.0.0.2"
    )
    assert await run(dns, sender="example.com") is PASS
    assert await run(dns, sender="@example.com") is PASS


# -- 4.4 record lookup ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["timeout", "servfail"])
async def test_4_4_txt_lookup_error_is_temperror(how: str) -> None:
    dns = InMemoryDns().fail("example.com", "TXT", how)
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is TEMPERROR
    assert result.problem is not None
    expected = ProblemKind.DNS_TIMEOUT if how == "timeout" else ProblemKind.DNS_SERVER_FAILURE
    assert result.problem.kind is expected


async def test_4_4_only_txt_records_are_queried() -> None:
    dns = spf("v=spf1 -all")
    await run(dns)
    assert dns.asked == [("example.com", "TXT")]


# -- 4.5 selecting records ------------------------------------------------------------------------


async def test_4_5_no_spf_among_txt_records_is_none() -> None:
    dns = spf("google-site-verification=abc")
    assert await run(dns) is NONE


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("v=spf1 -all", FAIL),
        ("V=SPF1 -all", FAIL),  # ABNF literals are case-insensitive
        ("v=spf1", NEUTRAL),  # version alone, ended by the end of the record
        ("v=spf10 -all", NONE),  # not terminated by SP or end
        ("v=spf1-all", NONE),
        ("spf1 -all", NONE),
        (" v=spf1 -all", NONE),
    ],
)
async def test_4_5_version_section_is_exactly_v_spf1(record: str, expected: SpfResultCode) -> None:
    assert await run(spf(record)) is expected


async def test_4_5_other_txt_records_are_discarded() -> None:
    dns = spf("v=spf1 -all").add("example.com", "TXT", "v=DMARC1; p=none", "hello world")
    assert await run(dns) is FAIL


async def test_4_5_more_than_one_record_is_permerror() -> None:
    dns = spf("v=spf1 -all").add("example.com", "TXT", "v=spf1 +all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.MULTIPLE_RECORDS


async def test_3_3_character_strings_are_joined_without_spaces() -> None:
    dns = InMemoryDns().add("example.com", "TXT", ("v=spf1 ip4:192.0", ".2.1 -all"))
    assert await run(dns, ip="192.0.2.1") is PASS
    assert await run(dns, ip="192.0.2.2") is FAIL


# -- 4.6 record evaluation ------------------------------------------------------------------------


async def test_4_6_syntax_error_anywhere_is_permerror_even_after_a_match() -> None:
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=spf("v=spf1 +all ip4:192.0.2.300"))
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.term == "ip4:192.0.2.300"


async def test_4_6_1_terms_are_separated_by_one_or_more_spaces() -> None:
    assert await run(spf("v=spf1   ip4:192.0.2.1    -all  ")) is PASS


async def test_4_6_1_tab_is_not_a_separator() -> None:
    assert await run(spf("v=spf1 ip4:192.0.2.1\t-all")) is PERMERROR


async def test_4_6_1_unknown_mechanism_is_permerror() -> None:
    assert await run(spf("v=spf1 ip4:192.0.2.1 foo:bar.example.com -all")) is PERMERROR


@pytest.mark.parametrize(
    ("qualifier", "expected"),
    [("+", PASS), ("", PASS), ("-", FAIL), ("~", SOFTFAIL), ("?", NEUTRAL)],
)
async def test_4_6_2_qualifier_gives_the_result(qualifier: str, expected: SpfResultCode) -> None:
    assert await run(spf(f"v=spf1 {qualifier}ip4:192.0.2.1 -all")) is expected


async def test_4_6_2_mechanisms_are_evaluated_left_to_right_first_match_wins() -> None:
    dns = spf("v=spf1 -ip4:192.0.2.1 +ip4:192.0.2.0/24 ~all")
    assert await run(dns, ip="192.0.2.1") is FAIL
    assert await run(dns, ip="192.0.2.2") is PASS
    assert await run(dns, ip="198.51.100.1") is SOFTFAIL


async def test_4_6_2_result_names_the_matching_mechanism() -> None:
    result = await check_host(
        "192.0.2.9", "example.com", "a@example.com", resolver=spf("v=spf1 ip4:192.0.2.1 ip4:192.0.2.8/29 -all")
    )
    assert result.mechanism == "ip4:192.0.2.8/29"
    assert result.matched_domain == "example.com"


async def test_4_6_3_unknown_modifier_is_ignored() -> None:
    assert await run(spf("v=spf1 moo=cow.%{d} ip4:192.0.2.1 -all")) is PASS


async def test_4_6_3_unknown_modifier_must_still_be_a_valid_macro_string() -> None:
    assert await run(spf("v=spf1 moo=%{q} ip4:192.0.2.1 -all")) is PERMERROR


# -- 4.6.4 DNS lookup limits ----------------------------------------------------------------------


def includes(count: int) -> InMemoryDns:
    terms = " ".join(f"include:i{n}.example.net" for n in range(count))
    dns = spf(f"v=spf1 {terms} -all")
    for n in range(count):
        dns.add(f"i{n}.example.net", "TXT", "v=spf1 -all")
    return dns


async def test_4_6_4_ten_lookups_are_allowed() -> None:
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=includes(10))
    assert result.result is FAIL
    assert result.dns_lookups == 10


async def test_4_6_4_more_than_10_lookups_is_permerror() -> None:
    dns = includes(11)
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.TOO_MANY_LOOKUPS
    assert result.problem.term == "include:i10.example.net"
    assert ("i10.example.net", "TXT") not in dns.asked  # the 11th term fails before its query


async def test_4_6_4_lookups_are_counted_across_includes_and_redirects() -> None:
    dns = spf(
        "v=spf1 include:a.example.net a mx redirect=b.example.net",
        a_example_net="v=spf1 a:x.example.net a:y.example.net -exists:z.example.net +all",
        b_example_net="v=spf1 include:c.example.net ptr -exists:w.example.net +all",
        c_example_net="v=spf1 -all",
    )
    for name in ("example.com", "x.example.net", "y.example.net", "z.example.net", "w.example.net"):
        dns.add(name, "A", "198.51.100.7")
    dns.add("example.com", "MX", (10, "x.example.net"))
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    # include, 3 in a.example.net, a, mx, redirect, include, ptr, exists = 10
    assert result.dns_lookups == 10
    assert result.result is FAIL


async def test_4_6_4_all_ip4_ip6_and_exp_do_not_count() -> None:
    dns = spf("v=spf1 ip4:198.51.100.1 ip6:2001:db8::1 exp=explain.example.com -all", explain_example_com="nope")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is FAIL
    assert result.dns_lookups == 0


async def test_4_6_4_two_void_lookups_are_allowed() -> None:
    dns = spf("v=spf1 a:gone1.example.com mx:gone2.example.com ip4:192.0.2.1 -all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PASS
    assert result.void_lookups == 2


async def test_4_6_4_third_void_lookup_is_permerror() -> None:
    dns = spf("v=spf1 a:gone1.example.com exists:gone2.example.com mx:gone3.example.com ip4:192.0.2.1 -all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.TOO_MANY_VOID_LOOKUPS
    assert result.problem.term == "mx:gone3.example.com"


async def test_4_6_4_nodata_counts_as_void_like_nxdomain() -> None:
    dns = spf("v=spf1 a:host.example.com a:host.example.com a:host.example.com -all")
    dns.add("host.example.com", "MX", (10, "mx.example.com"))  # the name exists, no A record
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PERMERROR
    assert result.void_lookups == 3


async def test_4_6_4_more_than_10_mx_names_is_permerror() -> None:
    dns = spf("v=spf1 mx -all")
    for n in range(11):
        dns.add("example.com", "MX", (n, f"mx{n}.example.com")).add(f"mx{n}.example.com", "A", "198.51.100.9")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.TOO_MANY_MX


async def test_4_6_4_ten_mx_names_are_allowed() -> None:
    dns = spf("v=spf1 mx -all")
    for n in range(10):
        dns.add("example.com", "MX", (n, f"mx{n}.example.com")).add(f"mx{n}.example.com", "A", f"192.0.2.{n}")
    assert await run(dns, ip="192.0.2.9") is PASS


async def test_4_6_4_ptr_names_beyond_the_first_10_are_ignored() -> None:
    dns = spf("v=spf1 ptr -all")
    names = [f"h{n}.example.com" for n in range(11)]
    dns.add_ptr("192.0.2.1", *names)
    dns.add("h10.example.com", "A", "192.0.2.1")  # only the 11th name would validate
    assert await run(dns) is FAIL
    assert ("h10.example.com", "A") not in dns.asked


async def test_4_6_4_include_loop_ends_at_the_lookup_limit() -> None:
    dns = spf("v=spf1 include:loop.example.net -all", loop_example_net="v=spf1 include:example.com -all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.TOO_MANY_LOOKUPS
    assert result.dns_lookups == 11


async def test_4_6_4_limits_are_configurable() -> None:
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=includes(3), max_lookups=2)
    assert result.result is PERMERROR


async def test_4_6_4_elapsed_time_limit_is_temperror() -> None:
    dns = spf("v=spf1 a:slow.example.com -all").delay("slow.example.com", "A", 5)
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns, time_limit=0.05)
    assert result.result is TEMPERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.EVALUATION_TIMEOUT


# -- 4.7 default result, 4.8 domain specification -------------------------------------------------


async def test_4_7_no_match_and_no_redirect_is_neutral() -> None:
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=spf("v=spf1 ip4:198.51.100.1"))
    assert result.result is NEUTRAL
    assert result.mechanism is None


async def test_4_8_missing_domain_spec_means_the_current_domain() -> None:
    dns = spf("v=spf1 include:sub.example.net -all", sub_example_net="v=spf1 a -all")
    dns.add("sub.example.net", "A", "192.0.2.1").add("example.com", "A", "198.51.100.1")
    assert await run(dns, ip="192.0.2.1") is PASS  # 'a' inside the include means sub.example.net
    assert await run(dns, ip="198.51.100.1") is FAIL


# -- 5 mechanisms ---------------------------------------------------------------------------------


async def test_5_dns_error_in_a_mechanism_is_temperror() -> None:
    dns = spf("v=spf1 a:broken.example.com -all").fail("broken.example.com", "A", "servfail")
    assert await run(dns) is TEMPERROR


async def test_5_nxdomain_in_a_mechanism_is_no_match() -> None:
    assert await run(spf("v=spf1 a:gone.example.com ?all")) is NEUTRAL


async def test_5_1_mechanisms_after_all_are_ignored() -> None:
    result = await check_host(
        "192.0.2.1", "example.com", "a@example.com", resolver=spf("v=spf1 -all include:never.example.net ip4:192.0.2.1")
    )
    assert result.result is FAIL
    assert result.dns_lookups == 0


@pytest.mark.parametrize("record", ["v=spf1 redirect=other.example.net -all", "v=spf1 -all redirect=other.example.net"])
async def test_5_1_redirect_is_ignored_when_all_is_present(record: str) -> None:
    dns = spf(record, other_example_net="v=spf1 +all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is FAIL
    assert ("other.example.net", "TXT") not in dns.asked


async def test_5_2_include_pass_matches() -> None:
    dns = spf("v=spf1 include:_spf.example.net -all", _spf_example_net="v=spf1 ip4:192.0.2.0/24 -all")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is PASS
    assert result.mechanism == "include:_spf.example.net"


@pytest.mark.parametrize("included", ["v=spf1 -all", "v=spf1 ~all", "v=spf1 ?all", "v=spf1"])
async def test_5_2_include_fail_softfail_neutral_do_not_match(included: str) -> None:
    dns = spf("v=spf1 include:other.example.net ip4:192.0.2.1 -all", other_example_net=included)
    assert await run(dns) is PASS  # evaluation went on to ip4
    assert await run(dns, ip="198.51.100.1") is FAIL


async def test_5_2_include_of_a_domain_without_record_is_permerror() -> None:
    result = await check_host(
        "192.0.2.1", "example.com", "a@example.com", resolver=spf("v=spf1 include:nothing.example.net -all")
    )
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.kind is ProblemKind.NO_RECORD


async def test_5_2_include_permerror_and_temperror_propagate() -> None:
    dns = spf("v=spf1 include:bad.example.net +all", bad_example_net="v=spf1 bogus")
    assert await run(dns) is PERMERROR
    dns = spf("v=spf1 include:down.example.net +all").fail("down.example.net", "TXT", "timeout")
    assert await run(dns) is TEMPERROR


async def test_5_2_include_needs_a_domain() -> None:
    assert await run(spf("v=spf1 include -all")) is PERMERROR


async def test_5_2_included_record_sees_its_own_domain_as_d() -> None:
    dns = spf("v=spf1 include:inc.example.net -all", inc_example_net="v=spf1 exists:%{d}.allow.example.org -all")
    dns.add("inc.example.net.allow.example.org", "A", "127.0.0.2")
    assert await run(dns) is PASS


async def test_5_3_a_matches_the_domains_addresses() -> None:
    dns = spf("v=spf1 a -all").add("example.com", "A", "192.0.2.10", "192.0.2.11")
    assert await run(dns, ip="192.0.2.11") is PASS
    assert await run(dns, ip="192.0.2.12") is FAIL


async def test_5_3_a_with_cidr_matches_the_network() -> None:
    dns = spf("v=spf1 a:mail.example.com/24 -all").add("mail.example.com", "A", "192.0.2.10")
    assert await run(dns, ip="192.0.2.200") is PASS
    assert await run(dns, ip="192.0.3.1") is FAIL


async def test_5_3_ipv6_client_uses_aaaa_and_the_ip6_prefix() -> None:
    dns = spf("v=spf1 a/24//64 -all").add("example.com", "A", "192.0.2.10").add("example.com", "AAAA", "2001:db8::1")
    assert await run(dns, ip="2001:db8::ffff") is PASS
    assert await run(dns, ip="2001:db8:1::1") is FAIL
    assert await run(dns, ip="192.0.2.99") is PASS
    assert ("example.com", "AAAA") in dns.asked


async def test_5_3_ipv4_client_does_not_query_aaaa() -> None:
    dns = spf("v=spf1 a -all").add("example.com", "AAAA", "2001:db8::1")
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=dns)
    assert result.result is FAIL
    assert ("example.com", "AAAA") not in dns.asked


async def test_5_4_mx_matches_exchange_addresses() -> None:
    dns = spf("v=spf1 mx -all").add("example.com", "MX", (10, "mail-a.example.com"), (20, "mail-b.example.com"))
    dns.add("mail-a.example.com", "A", "192.0.2.129").add("mail-b.example.com", "A", "192.0.2.130")
    assert await run(dns, ip="192.0.2.130") is PASS
    assert await run(dns, ip="192.0.2.131") is FAIL


async def test_5_4_no_implicit_mx_from_the_a_record() -> None:
    dns = spf("v=spf1 mx -all").add("example.com", "A", "192.0.2.1")
    assert await run(dns) is FAIL
    assert ("example.com", "A") not in dns.asked


async def test_5_4_null_mx_matches_nothing() -> None:
    dns = spf("v=spf1 mx -all").add("example.com", "MX", (0, "."))
    assert await run(dns) is FAIL


async def test_5_5_ptr_matches_a_validated_name_under_the_domain() -> None:
    dns = spf("v=spf1 ptr -all").add_ptr("192.0.2.65", "amy.example.com").add("amy.example.com", "A", "192.0.2.65")
    assert await run(dns, ip="192.0.2.65") is PASS


async def test_5_5_ptr_name_whose_address_does_not_match_is_not_validated() -> None:
    dns = spf("v=spf1 ptr -all").add_ptr("10.0.0.4", "bob.example.com").add("bob.example.com", "A", "192.0.2.66")
    assert await run(dns, ip="10.0.0.4") is FAIL


async def test_5_5_ptr_name_outside_the_domain_does_not_match() -> None:
    dns = spf("v=spf1 ptr -all").add_ptr("192.0.2.140", "mail-c.example.org")
    dns.add("mail-c.example.org", "A", "192.0.2.140")
    assert await run(dns, ip="192.0.2.140") is FAIL


async def test_5_5_ptr_lookup_error_is_no_match_not_temperror() -> None:
    dns = spf("v=spf1 ptr ?all").fail("1.2.0.192.in-addr.arpa", "PTR", "servfail")
    assert await run(dns) is NEUTRAL


async def test_5_5_address_lookup_error_skips_that_name() -> None:
    dns = spf("v=spf1 ptr -all").add_ptr("192.0.2.1", "broken.example.com", "good.example.com")
    dns.fail("broken.example.com", "A", "timeout").add("good.example.com", "A", "192.0.2.1")
    assert await run(dns) is PASS


@pytest.mark.parametrize(
    ("term", "ip", "expected"),
    [
        ("ip4:192.0.2.1", "192.0.2.1", PASS),
        ("ip4:192.0.2.1", "192.0.2.2", FAIL),  # /32 by default
        ("ip4:192.0.2.0/24", "192.0.2.77", PASS),
        ("ip4:192.0.2.77/24", "192.0.2.1", PASS),  # host bits beyond the prefix are ignored
        ("ip4:0.0.0.0/0", "203.0.113.9", PASS),
        ("ip6:2001:db8::/32", "2001:db8:ffff::1", PASS),
        ("ip6:2001:db8::1", "2001:db8::2", FAIL),  # /128 by default
        ("ip4:192.0.2.0/24", "2001:db8::1", FAIL),  # ip4 never matches an IPv6 client
        ("ip6:::/0", "192.0.2.1", FAIL),  # ip6 never matches an IPv4 client
        ("ip4:192.0.2.1", "::ffff:192.0.2.1", PASS),  # an IPv4-mapped client is an IPv4 client
    ],
)
async def test_5_6_ip4_and_ip6_compare_networks(term: str, ip: str, expected: SpfResultCode) -> None:
    assert await run(spf(f"v=spf1 {term} -all"), ip=ip) is expected


@pytest.mark.parametrize(
    "term",
    [
        "ip4:192.0.2.1/33",
        "ip4:192.0.2.1/024",
        "ip4:192.0.2",
        "ip4:192.0.02.1",
        "ip4:192.0.2.1/",
        "ip4",
        "ip6:2001:db8::/129",
        "ip6:2001:db8::zz",
        "ip6:192.0.2.1",
        "a/33",
        "a:example.com//129",
        "all:example.com",
        "exists",
        "a:1.2.3.4",  # the ABNF's toplabel needs a letter (or a dash): an address is not a domain
        "a:example",  # domain-end needs "." toplabel
    ],
)
async def test_5_malformed_mechanism_is_permerror(term: str) -> None:
    result = await check_host("192.0.2.1", "example.com", "a@example.com", resolver=spf(f"v=spf1 {term} +all"))
    assert result.result is PERMERROR
    assert result.problem is not None
    assert result.problem.term == term


async def test_5_7_exists_matches_any_a_record() -> None:
    dns = spf("v=spf1 exists:%{ir}.list.example.net -all").add("1.2.0.192.list.example.net", "A", "127.0.0.2")
    assert await run(dns, ip="192.0.2.1") is PASS
    assert await run(dns, ip="192.0.2.3") is FAIL


async def test_5_7_exists_queries_a_even_for_an_ipv6_client() -> None:
    dns = spf("v=spf1 exists:allow.example.net -all").add("allow.example.net", "A", "127.0.0.2")
    assert await run(dns, ip="2001:db8::1") is PASS
    assert ("allow.example.net", "AAAA") not in dns.asked


# -- 6 modifiers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    ["v=spf1 redirect=a.example.net redirect=b.example.net", "v=spf1 exp=a.example.net exp=b.example.net -all"],
)
async def test_6_redirect_or_exp_twice_is_permerror(record: str) -> None:
    assert await run(spf(record)) is PERMERROR


async def test_6_1_redirect_result_is_the_targets_result() -> None:
    dns = spf("v=spf1 redirect=_spf.example.net", _spf_example_net="v=spf1 ip4:192.0.2.0/24 ~all")
    assert await run(dns, ip="192.0.2.1") is PASS
    assert await run(dns, ip="198.51.100.1") is SOFTFAIL


async def test_6_1_redirect_is_used_only_when_no_mechanism_matches() -> None:
    dns = spf("v=spf1 ip4:198.51.100.1 redirect=_spf.example.net", _spf_example_net="v=spf1 -all")
    assert await run(dns, ip="198.51.100.1") is PASS
    assert await run(dns, ip="192.0.2.1") is FAIL


async def test_6_1_redirect_to_a_domain_without_record_is_permerror() -> None:
    assert await run(spf("v=spf1 redirect=nothing.example.net")) is PERMERROR


async def test_6_1_redirect_to_a_malformed_name_is_permerror() -> None:
    assert await run(spf("v=spf1 redirect=%{l}.example.net"), sender="a..b@example.com") is PERMERROR


async def test_6_1_redirect_counts_as_a_lookup() -> None:
    result = await check_host(
        "192.0.2.1",
        "example.com",
        "a@example.com",
        resolver=spf("v=spf1 redirect=r.example.net", r_example_net="v=spf1 -all"),
    )
    assert result.dns_lookups == 1


async def test_6_1_redirected_record_sees_the_target_as_d() -> None:
    dns = spf("v=spf1 redirect=r.example.net", r_example_net="v=spf1 exists:%{d}.ok.example.org -all")
    dns.add("r.example.net.ok.example.org", "A", "127.0.0.2")
    assert await run(dns) is PASS


async def test_6_2_explanation_is_the_expanded_exp_text() -> None:
    dns = spf(
        "v=spf1 -all exp=explain._spf.%{d}",
        explain__spf_example_com="%{i} is not one of %{d}'s designated mail servers. [%{c} %{r} %{t}]",
    )
    result = await check_host(
        "192.0.2.3", "example.com", "a@example.com", resolver=dns, receiver="mx.example.org", now=lambda: 1700000000.0
    )
    assert result.result is FAIL
    assert result.explanation == (
        "192.0.2.3 is not one of example.com's designated mail servers. [192.0.2.3 mx.example.org 1700000000]"
    )


async def test_6_2_explanation_strings_are_joined_without_spaces() -> None:
    dns = spf("v=spf1 -all exp=e.example.com").add("e.example.com", "TXT", ("See http://", "example.com/why"))
    result = await check_host("192.0.2.3", "example.com", "a@example.com", resolver=dns)
    assert result.explanation == "See http://example.com/why"


@pytest.mark.parametrize(
    "setup",
    ["missing", "two-records", "syntax", "servfail"],
)
async def test_6_2_exp_errors_give_the_default_explanation(setup: str) -> None:
    dns = spf("v=spf1 -all exp=e.example.com")
    if setup == "two-records":
        dns.add("e.example.com", "TXT", "one", "two")
    elif setup == "syntax":
        dns.add("e.example.com", "TXT", "bad %{x} macro")
    elif setup == "servfail":
        dns.fail("e.example.com", "TXT", "servfail")
    result = await check_host("192.0.2.3", "example.com", "a@example.com", resolver=dns)
    assert result.result is FAIL
    assert result.explanation == "example.com does not designate 192.0.2.3 as a host permitted to send its mail"


async def test_6_2_exp_of_an_included_record_is_not_used() -> None:
    dns = spf("v=spf1 -include:inc.example.net -all", inc_example_net="v=spf1 +all exp=e.example.net").add(
        "e.example.net", "TXT", "from the include"
    )
    result = await check_host("192.0.2.3", "example.com", "a@example.com", resolver=dns)
    assert result.result is FAIL
    assert result.explanation is not None
    assert "from the include" not in result.explanation


async def test_6_2_redirect_uses_the_targets_exp_not_the_originals() -> None:
    dns = spf("v=spf1 exp=orig.example.com redirect=r.example.net", r_example_net="v=spf1 -all exp=e.example.net")
    dns.add("orig.example.com", "TXT", "original").add("e.example.net", "TXT", "redirected")
    result = await check_host("192.0.2.3", "example.com", "a@example.com", resolver=dns)
    assert result.explanation == "redirected"


async def test_6_2_only_fail_carries_an_explanation() -> None:
    dns = spf("v=spf1 ~all exp=e.example.com").add("e.example.com", "TXT", "why")
    result = await check_host("192.0.2.3", "example.com", "a@example.com", resolver=dns)
    assert result.result is SOFTFAIL
    assert result.explanation is None


async def test_6_2_exp_lookups_do_not_count() -> None:
    dns = spf("v=spf1 -all exp=e.example.com").add("e.example.com", "TXT", "why")
    result = await check_host("192.0.2.3", "example.com", "a@example.com", resolver=dns)
    assert result.dns_lookups == 0


# -- Appendix A.1: the RFC's own simple examples ---------------------------------------------------


def appendix_a() -> InMemoryDns:
    dns = InMemoryDns()
    dns.add("example.com", "MX", (10, "mail-a.example.com"), (20, "mail-b.example.com"))
    dns.add("amy.example.com", "A", "192.0.2.65").add("bob.example.com", "A", "192.0.2.66")
    dns.add("mail-a.example.com", "A", "192.0.2.129").add("mail-b.example.com", "A", "192.0.2.130")
    dns.add("mail-c.example.org", "A", "192.0.2.140").add("example.org", "MX", (10, "mail-c.example.org"))
    dns.add("example.com", "A", "192.0.2.10", "192.0.2.11")
    for ip, name in [
        ("192.0.2.10", "example.com"),
        ("192.0.2.11", "example.com"),
        ("192.0.2.65", "amy.example.com"),
        ("192.0.2.66", "bob.example.com"),
        ("192.0.2.129", "mail-a.example.com"),
        ("192.0.2.130", "mail-b.example.com"),
        ("192.0.2.140", "mail-c.example.org"),
        ("10.0.0.4", "bob.example.com"),
    ]:
        dns.add_ptr(ip, name)
    return dns


APPENDIX_HOSTS = [
    "192.0.2.10",
    "192.0.2.11",
    "192.0.2.65",
    "192.0.2.66",
    "192.0.2.129",
    "192.0.2.130",
    "192.0.2.140",
    "10.0.0.4",
]


@pytest.mark.parametrize(
    ("record", "passing"),
    [
        ("v=spf1 +all", set(APPENDIX_HOSTS)),
        ("v=spf1 a -all", {"192.0.2.10", "192.0.2.11"}),
        ("v=spf1 a:example.org -all", set()),
        ("v=spf1 mx -all", {"192.0.2.129", "192.0.2.130"}),
        ("v=spf1 mx:example.org -all", {"192.0.2.140"}),
        ("v=spf1 mx mx:example.org -all", {"192.0.2.129", "192.0.2.130", "192.0.2.140"}),
        ("v=spf1 mx/30 mx:example.org/30 -all", {"192.0.2.129", "192.0.2.130", "192.0.2.140"}),
        ("v=spf1 ptr -all", {"192.0.2.10", "192.0.2.11", "192.0.2.65", "192.0.2.66", "192.0.2.129", "192.0.2.130"}),
        ("v=spf1 ip4:192.0.2.128/28 -all", {"192.0.2.129", "192.0.2.130", "192.0.2.140"}),
    ],
)
async def test_appendix_a_1_simple_examples(record: str, passing: set[str]) -> None:
    dns = appendix_a().add("example.com", "TXT", record)
    got = {ip for ip in APPENDIX_HOSTS if await run(dns, ip=ip) is PASS}
    assert got == passing
