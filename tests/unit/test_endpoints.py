"""Which endpoint addresses count as public (promise 10)."""

from __future__ import annotations

import pytest

from portability.endpoints import check_public_endpoint, is_public_address
from portability.errors import ValidationError


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        ("fd00::1", False),
    ],
)
def test_internal_addresses_are_not_public(address, public):
    assert is_public_address(address) is public


def test_a_url_without_a_host_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as refused:
        check_public_endpoint("s3://bucket")
    assert refused.value.field == "endpoint_url"
