"""Register a ready-to-run transfer in one call: an approved app, a user's grant, a destination.

For the demo, the benchmarks and the tests -- the three places that need "a transfer that can
run" without the API in front. Goes through ``portability.registry`` like every writer.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from sqlalchemy.orm import Session

from portability.crypto import CredentialBox
from portability.db.models import Access, AppStatus
from portability.netpolicy import EndpointPolicy
from portability.registry import add_destination, create_app, grant, set_app_status

__all__ = ["SampleTransfer", "register_sample_transfer"]


@dataclass(frozen=True)
class SampleTransfer:
    app_id: int
    authorization_id: int
    destination_id: int


def register_sample_transfer(
    session: Session,
    box: CredentialBox,
    *,
    user_id: str,
    categories: str,
    eligible_countries: Set[str],
    bucket: str,
    access_key_id: str,
    secret_access_key: str,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    prefix: str = "",
    compression: str = "gzip",
    access: Access | str = Access.ONGOING,
    app_name: str = "Acme",
    use_case: str = "Imports the user's posts and profile into Acme's editor.",
    endpoint_policy: EndpointPolicy | None = None,
) -> SampleTransfer:
    """Create and approve an app, grant it ``categories`` of ``user_id``, add its bucket."""
    app, _api_key = create_app(
        session, name=app_name, contact_email="dev@acme.example", use_case=use_case
    )
    set_app_status(session, app.id, AppStatus.APPROVED)
    authorization = grant(
        session,
        user_id=user_id,
        app_id=app.id,
        categories=categories,
        access=access,
        eligible_countries=eligible_countries,
    )
    destination = add_destination(
        session,
        box,
        app_id=app.id,
        bucket=bucket,
        endpoint_url=endpoint_url,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        prefix=prefix,
        compression=compression,
        endpoint_policy=endpoint_policy or EndpointPolicy(),
    )
    return SampleTransfer(app.id, authorization.id, destination.id)
