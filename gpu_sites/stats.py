"""Each site's record, read from the attempts the core writes: work in flight, run times,
failures in a row, and whether the site is excluded for failing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from idds.tasks import AttemptKind, TaskState

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gpu_sites.spec import BrokerSpec
    from idds.records import AttemptRecord, Records


@dataclass(frozen=True)
class SiteStats:
    """A site's recent record.

    Attributes:
        in_flight: attempts placed there that have not ended (dispatched or running).
        succeeded: successes among the recent finished attempts.
        failed: failures among them.
        mean_s: mean run time of the recent successes (``None`` before the first).
        streak: failures in a row, counted back from the newest finished attempt.
        last_failure: when the newest failure ended (database clock).
        excluded_until: until when the broker keeps work away (``None``: not excluded).
    """

    in_flight: int = 0
    succeeded: int = 0
    failed: int = 0
    mean_s: float | None = None
    streak: int = 0
    last_failure: float | None = None
    excluded_until: float | None = None


def read_stats(
    records: Records, sites: list[str], rules: BrokerSpec
) -> tuple[dict[str, SiteStats], float]:
    """Every site's record, and the database clock's time now.

    Args:
        records: the database's records.
        sites: the sites' names.
        rules: the broker's window and exclusion rule.
    """
    now = records.now()
    flying = records.in_flight_by_site(sites)
    out = {}
    for site in sites:
        recent = records.attempts(
            sites=[site],
            finished=True,
            exclude_kinds=[AttemptKind.CANCELLED],
            newest_first=True,
            limit=rules.window,
        )
        out[site] = summarise(recent, flying.get(site, 0), now, rules)
    return out, now


def summarise(
    attempts: Sequence[AttemptRecord], in_flight: int, now: float, rules: BrokerSpec
) -> SiteStats:
    """A site's record from its recent finished attempts (newest first).

    Attempts lost with their head say nothing of the site and are left out.

    Args:
        attempts: its recent finished attempts, newest first.
        in_flight: its attempts in flight.
        now: the database clock now.
        rules: the exclusion rule.
    """
    rows = [a for a in attempts if a.kind is not AttemptKind.LOST]
    ok = [a for a in rows if a.state == TaskState.SUCCEEDED]
    durations = [
        a.finished - a.started for a in ok if a.started is not None and a.finished is not None
    ]
    streak = 0
    for attempt in rows:
        if attempt.state == TaskState.SUCCEEDED:
            break
        streak += 1
    last_failure = next((a.finished for a in rows if a.state != TaskState.SUCCEEDED), None)
    until = None
    if streak >= rules.fail_streak and last_failure is not None:
        until = last_failure + rules.exclude_s
        until = until if until > now else None
    return SiteStats(
        in_flight=in_flight,
        succeeded=len(ok),
        failed=len(rows) - len(ok),
        mean_s=sum(durations) / len(durations) if durations else None,
        streak=streak,
        last_failure=last_failure,
        excluded_until=until,
    )
