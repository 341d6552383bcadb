"""``/v1/manifest-keys``: the public halves of the keys that sign every manifest.

Unauthenticated on purpose: a consumer verifying its bucket (``portability consume
--verify-key``) needs them before it has anything else, and a public key reveals nothing.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from portability.api._context import Ctx
from portability.api._problems import PROBLEM_RESPONSES
from portability.signing import public_keys

router = APIRouter(prefix="/v1/manifest-keys", tags=["manifests"], responses=PROBLEM_RESPONSES)


class ManifestKeyOut(BaseModel):
    key_id: str = Field(description="The manifest's `signature.key_id` names it.")
    alg: str = Field(description="Always `ed25519`.")
    public_key: str = Field(description="Base64 of the 32 raw bytes of the public key.")


@router.get("", summary="Public keys that verify manifest signatures, newest first")
def manifest_keys(ctx: Ctx) -> list[ManifestKeyOut]:
    return [ManifestKeyOut(**key) for key in public_keys(ctx.settings)]
