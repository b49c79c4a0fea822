"""The sites as recorded: one owner of kind ``site`` per site, whose state says whether it
is drained (``suspended``) or takes work (``active``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from idds.owners import OwnerState

if TYPE_CHECKING:
    from idds.records import Records

KIND = "site"


def drained_sites(records: Records) -> set[str]:
    """The names of the drained sites."""
    return {site.name for site in records.owners(KIND, state=OwnerState.SUSPENDED)}


def set_drained(records: Records, name: str, drained: bool) -> None:
    """Mark a site drained (no new work; its pilots stop) or active again."""
    records.ensure(KIND, name, OwnerState.SUSPENDED if drained else OwnerState.ACTIVE)
