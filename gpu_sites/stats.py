"""Each site's record, read from the attempts the core writes: work in flight, run times,
failures in a row, and whether the site is excluded for failing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from idds import tasks as tq
from idds.db import db_now

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from gpu_sites.spec import BrokerSpec

#: Attempts that ended for reasons that say nothing of the site.
_NOT_THE_SITE = ("lost:",)


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
    conn: Connection, sites: list[str], rules: BrokerSpec
) -> tuple[dict[str, SiteStats], float]:
    """Every site's record, and the database clock's time now.

    Args:
        conn: a (read-only) connection.
        sites: the sites' names.
        rules: the broker's window and exclusion rule.
    """
    now = float(conn.execute(sa.select(db_now())).scalar_one())
    flying = dict(
        conn.execute(
            sa.select(tq.attempts.c.site, sa.func.count())
            .where(tq.attempts.c.state.in_(tq.IN_FLIGHT), tq.attempts.c.site.in_(sites))
            .group_by(tq.attempts.c.site)
        ).all()
    )
    out = {}
    for site in sites:
        rows = _recent(conn, site, rules.window)
        out[site] = summarise(rows, int(flying.get(site, 0)), now, rules)
    return out, now


def _recent(conn: Connection, site: str, window: int) -> list[sa.Row[tuple[str, float, float]]]:
    a = tq.attempts
    return list(
        conn.execute(
            sa.select(a.c.state, a.c.started, a.c.finished, a.c.error)
            .where(a.c.site == site, a.c.finished.is_not(None), a.c.state != "cancelled")
            .order_by(a.c.finished.desc(), a.c.id.desc())
            .limit(window)
        ).all()
    )


def summarise(rows: list, in_flight: int, now: float, rules: BrokerSpec) -> SiteStats:
    """A site's record from its recent finished attempts (newest first).

    Args:
        rows: ``(state, started, finished, error)`` per attempt.
        in_flight: its attempts in flight.
        now: the database clock now.
        rules: the exclusion rule.
    """
    rows = [r for r in rows if not (r[3] or "").startswith(_NOT_THE_SITE)]
    ok = [r for r in rows if r[0] == "succeeded"]
    durations = [r[2] - r[1] for r in ok if r[1] is not None]
    streak = 0
    for row in rows:
        if row[0] == "succeeded":
            break
        streak += 1
    last_failure = next((r[2] for r in rows if r[0] != "succeeded"), None)
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
