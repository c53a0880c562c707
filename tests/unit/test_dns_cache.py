"""The shared DNS cache stays within its bound, and a full cache costs no more per answer than an empty one."""

from __future__ import annotations

from postmaster.checks import dns as dns_module
from postmaster.checks.dns import DnsCache


async def test_a_full_cache_drops_the_oldest_answers_a_tenth_at_a_time() -> None:
    now = [0.0]
    cache = DnsCache(max_entries=100, clock=lambda: now[0])
    fetched: list[str] = []

    async def answer(name: str) -> None:
        async def fetch() -> dns_module._Step:
            fetched.append(name)
            return dns_module._Step(dns_module.Status.FOUND, ttl=300.0)

        await cache._get_or_fetch(("view", name, 16), fetch)

    for i in range(100):
        await answer(f"n{i}")
    assert len(cache) == 100
    await answer("n100")  # the bound is reached: the oldest tenth goes, in one pass
    assert len(cache) == 91
    await answer("n50")  # still cached
    await answer("n0")  # among the oldest: dropped, asked again
    assert fetched[-1] == "n0"
    assert fetched.count("n50") == 1
    now[0] = 400.0  # everything expired: the next eviction drops it all before counting
    for i in range(200, 300):
        await answer(f"n{i}")
    assert len(cache) <= 100
