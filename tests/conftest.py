"""Shared pytest configuration: fixtures live in tests/fixtures/, one module per real component."""

pytest_plugins = [
    "tests.fixtures.kube",
    "tests.fixtures.operator",
    "tests.fixtures.dns",
    "tests.fixtures.smtp",
    "tests.fixtures.relay",
]
