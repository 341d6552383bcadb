"""Shared fixtures live in tests/fixtures/, one module per service, registered here."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.db",
    "tests.fixtures.s3",
    "tests.fixtures.platform",
    "tests.fixtures.workers",
    "tests.fixtures.transfers",
    "tests.fixtures.consumer",
    "tests.fixtures.cli",
    "tests.fixtures.api",
    "tests.fixtures.web",
    "tests.fixtures.browser",
    "tests.fixtures.webhooks",
    "tests.fixtures.user_exports",
]
