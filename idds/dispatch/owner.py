"""What the dispatcher drives and where it runs it: the owner contract, the broker contract
and the broker a head uses by default."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idds.errors import IddsError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from idds.tasks import Claim, Outcome, TaskSpec, TaskState


class TaskOwner(abc.ABC):
    """A study, workflow or carousel as the dispatcher sees it.

    The dispatcher calls these methods from its own thread only. A result is reported
    (:meth:`on_final`) only after it has been committed.

    Attributes:
        owner_id: the owner's row id.
        parallel: how many of its tasks may be in flight at once.
        ahead: how many of its tasks the head may claim beyond ``parallel``, held ready to
            launch the moment one of its slots frees (before the result that freed it is
            recorded); for owners whose next tasks do not wait on the results of those in
            flight. 0 by default.
    """

    owner_id: int
    parallel: int
    ahead: int = 0

    @abc.abstractmethod
    def new_tasks(self, free: int) -> list[TaskSpec]:
        """Up to ``free`` new tasks to hand in now (an empty list when there are none)."""

    @abc.abstractmethod
    def on_final(self, number: int, state: TaskState, result: Any, error: str | None) -> None:
        """A task reached a final state (once per task)."""

    @abc.abstractmethod
    def done(self) -> bool:
        """True when the owner expects no more tasks to run."""

    def accept(self, result: Any) -> Any:
        """The result to record for a payload's return value.

        Raises:
            ValueError: the result is unacceptable; the attempt fails with this message.
        """
        return result

    def on_cancel(self) -> None:  # noqa: B027 - an optional hook
        """The owner was cancelled (from this or another process)."""

    def on_report(self, number: int, step: int, value: float) -> bool:
        """A running task reported progress; return True to advise it to stop (prune)."""
        return False

    def on_question(self, number: int, question: Any) -> Any:
        """A running task asks something (e.g. a parameter's value); the answer is JSON.

        Raises:
            ValueError: the question cannot be answered (the task gets the message).
        """
        raise ValueError("this owner answers no questions")

    def on_spec(self, spec: dict[str, Any]) -> None:  # noqa: B027 - an optional hook
        """The owner's stored spec changed in another process (e.g. points were enqueued)."""


@dataclass(frozen=True)
class Placement:
    """Where the broker put a task: the site's name and the Ray options that pin it there."""

    site: str
    ray_options: dict[str, Any]


class Broker(abc.ABC):
    """Picks a site for each claimed task (site adapters plug in here).

    Attributes:
        lasting_places: whether a place it gives stays good however late the task is
            launched (then tasks may be claimed ahead); False where a site may be excluded
            or a pilot end meanwhile.
    """

    lasting_places: bool = False

    @abc.abstractmethod
    def place(self, claim: Claim) -> Placement:
        """The site to run ``claim`` on; must not block."""


class LocalBroker(Broker):
    """Every task on the Ray cluster this process is connected to, as site ``local``."""

    lasting_places = True

    def place(self, claim: Claim) -> Placement:
        res = claim.resources
        options: dict[str, Any] = {"num_cpus": float(res.get("cpus", 1))}
        if res.get("gpus"):
            options["num_gpus"] = float(res["gpus"])
        if res.get("memory_gb"):
            options["memory"] = int(float(res["memory_gb"]) * 2**30)
        return Placement(claim.site or "local", options)


def default_broker(engine: Engine, sites: Path | str | None = None) -> Broker:
    """The broker of the sites file ``sites`` (:attr:`idds.config.Settings.sites`, from
    ``IDDS_SITES``) where one is given, else :class:`LocalBroker`. The sites broker is found
    through the entry point ``sites`` of group ``idds.brokers`` (called with the file's path
    and the engine), so that the core imports no capability package.

    Raises:
        IddsError: a sites file is given and no such entry point is installed.
    """
    if not sites:
        return LocalBroker()
    from importlib.metadata import entry_points

    found = entry_points(group="idds.brokers", name="sites")
    if not found:
        raise IddsError("IDDS_SITES is set, and no broker is installed as idds.brokers:sites")
    broker: Broker = next(iter(found)).load()(str(sites), engine)
    return broker


class HeldOwners:
    """The owners a dispatcher runs, by id, and what it passes on to them.

    Args:
        owners: the owners.
    """

    def __init__(self, owners: Iterable[TaskOwner] = ()) -> None:
        self.by_id: dict[int, TaskOwner] = {o.owner_id: o for o in owners}

    def done(self) -> bool:
        """True when no owner expects more tasks to run."""
        return all(o.done() for o in self.by_id.values())

    def accept(self, claim: Claim, result: Any) -> Any:
        """The result to record for the value ``claim``'s payload returned."""
        return self.by_id[claim.owner_id].accept(result)

    def ask(self, claim: Claim, question: Any) -> Any:
        """The answer to the question of ``claim``'s running attempt."""
        return self.by_id[claim.owner_id].on_question(claim.number, question)

    def tell(self, finals: list[tuple[Claim, TaskState, Outcome]]) -> None:
        """Tell the owners of tasks that reached a final state (once committed)."""
        for claim, state, outcome in finals:
            self.by_id[claim.owner_id].on_final(
                claim.number, state, outcome.result if outcome.ok else None, outcome.error
            )

    def to_stop(self, reports: list[tuple[Claim, int, float]]) -> list[str]:
        """Tell the owners of progress reports (once recorded); returns the tokens of the
        attempts they want stopped."""
        return [
            claim.token
            for claim, step, value in reports
            if self.by_id[claim.owner_id].on_report(claim.number, step, value)
        ]
