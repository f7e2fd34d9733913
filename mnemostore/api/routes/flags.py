"""Feature flags: ``/v1/feature-flags/{flag}`` (a tenant's, and its channels'), ``/v1/admin/feature-flags/{flag}``
(the global ones, with the admin key).

A flag is read as one user sees it: the channel's value wins over the tenant's, which wins over the global one
(see ``mnemostore.cache.flags``); every change takes effect at once, in every process.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from .._json_body import JsonRoute
from ..deps import AdminDep, TenantDep
from ..schemas import FeatureFlagOut, FeatureFlagSet, GlobalFeatureFlagSet
from ._common import no_content

__all__ = ["global_flags", "router"]

router = APIRouter(route_class=JsonRoute, prefix="/v1/feature-flags", tags=["feature flags"])
global_flags = APIRouter(route_class=JsonRoute, prefix="/v1/admin/feature-flags", tags=["admin"])

Flag = Annotated[str, Path(min_length=1, max_length=200, description="the flag's name")]
ChannelQuery = Annotated[str | None, Query(min_length=1, max_length=50, description="as seen on this channel")]


@router.get("/{flag}", response_model=FeatureFlagOut)
async def get_feature_flag(
    flag: Flag,
    t: TenantDep,
    user_id: Annotated[uuid.UUID | None, Query(description="for this user (percentages and variants)")] = None,
    channel: ChannelQuery = None,
) -> dict[str, Any]:
    """Whether the flag is on (for the user, when it is a percentage or variants flag), and the user's A/B
    variant; an unknown flag is off."""
    enabled = await t.feature_enabled(flag, user_id=user_id, channel=channel)
    variant = await t.feature_variant(flag, user_id=user_id, channel=channel) if user_id is not None else None
    return {"flag": flag, "enabled": enabled, "variant": variant}


@router.put("/{flag}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def set_feature_flag(flag: Flag, body: FeatureFlagSet, t: TenantDep) -> Response:
    """Set the tenant's flag, or one channel's (``value`` null removes it)."""
    await t.set_feature_flag(flag, body.value, channel=body.channel)
    return no_content()


@router.delete("/{flag}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_feature_flag(flag: Flag, t: TenantDep, channel: ChannelQuery = None) -> Response:
    """Remove the tenant's flag, or one channel's: the next scope's value applies again."""
    await t.set_feature_flag(flag, None, channel=channel)
    return no_content()


@global_flags.put("/{flag}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def set_global_feature_flag(flag: Flag, body: GlobalFeatureFlagSet, store: AdminDep) -> Response:
    """Set a flag for every tenant that does not set it itself (``value`` null removes the override)."""
    await store.set_global_feature_flag(flag, body.value)
    return no_content()


@global_flags.delete("/{flag}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_global_feature_flag(flag: Flag, store: AdminDep) -> Response:
    """Remove the run-time override of a global flag: the service's configured value applies again."""
    await store.set_global_feature_flag(flag, None)
    return no_content()
