"""Asks in other processes: replicas of an Optuna study, where the sampler is the bottleneck.

An Optuna sampler's ask grows with the points seen (TPE's takes tens of milliseconds at a few
thousand points, a hundred and more at ten thousand): past that, the workers wait for points,
and one process, the head, can make them no faster, whatever runs in its threads (they share
its interpreter lock). :class:`Replicas` runs copies of the head's Optuna study in processes
of their own, each asked in turn, so that as many asks run at once as there are processes.

Each replica is told what the head's study learnt since it was last asked (finished points,
and the points handed out by the other replicas, which it counts as pending) before it asks,
so that its asks see the same history as the head's study would, less what is being asked
elsewhere at that moment, as workers of a distributed Optuna study sharing one storage do.
Pending points count as lies (TPE's ``constant_liar``), which keeps the replicas' points apart.
Replicas never record anything: the head registers each point in its own study, which stays the
one that is told, pruned and rebuilt from the database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from hpo.proposers import OptunaProposer, Point

#: Asks running at once, at most, whatever the CPUs.
MAX_REPLICAS = 4

#: An event a replica is told: ``("final", frozen trial)``, or ``("pending", number, params,
#: key)``: the head's trial ``number`` is the point a replica made under ``key`` (-1: the head's).
Event = tuple[Any, ...]


def replica_count(parallel: int) -> int:
    """How many ask processes are worth starting: no more than the points that run at once
    or the CPUs this process may use."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(parallel, cpus or 1, MAX_REPLICAS))


class Replicas:
    """Copies of a proposer's Optuna study in ``count`` processes, asked in turn.

    Args:
        proposer: the head's proposer; its study's trials so far are each replica's start.
        count: the processes.
    """

    def __init__(self, proposer: OptunaProposer, count: int) -> None:
        self._proposer = proposer
        spec = json.dumps(proposer.spec.to_json())
        start = [_event_of(t) for t in proposer.study.get_trials(deepcopy=False)]
        self._log: list[Event] = start
        self._base = 0  # the log's first event's index
        self._cursor = [0] * count
        self._asking: dict[int, int] = {}  # replica -> points it is asked for
        self._starting = set(range(count))  # not ready yet (importing, replaying)
        self._next_key = 0
        self._conns: list[Connection] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        # A fresh interpreter each (not multiprocessing's spawn, which imports the caller's
        # main script again), with this one's import path; it ends when its socket closes.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        for i in range(count):
            seed = "" if proposer.seed is None else str(proposer.seed + 7919 * (i + 1))
            ours, theirs = socket.socketpair()
            argv = [sys.executable, "-m", "hpo.replicas", str(theirs.fileno()), seed, spec]
            self._procs.append(subprocess.Popen(argv, pass_fds=[theirs.fileno()], env=env))
            theirs.close()
            self._conns.append(Connection(ours.detach()))

    @property
    def asking(self) -> int:
        """Points being asked now."""
        return sum(self._asking.values())

    @property
    def idle(self) -> int:
        """Replicas started and not asking."""
        return len(self._conns) - len(self._asking) - len(self._starting)

    def ask(self, n: int) -> None:
        """Ask up to ``n`` idle replicas for a point each (a point asked alone sees every
        outcome known when it is asked)."""
        free = [i for i in range(len(self._conns)) if i not in self._asking]
        for i in [i for i in free if i not in self._starting][:n]:
            self._conns[i].send((self._unseen(i), [self._next_key]))
            self._next_key += 1
            self._asking[i] = 1

    def results(self, timeout: float | None = 0.0) -> list[tuple[int, dict[str, Any]]]:
        """The points of the asks that ended, ``(key, params)``; waits up to
        ``timeout`` (None: until one ends) where none has.

        Raises:
            RuntimeError: a replica failed (its error), or died.
        """
        busy = [self._conns[i] for i in (*self._asking, *self._starting)]
        if not busy:
            return []
        out: list[tuple[int, dict[str, Any]]] = []
        for ready in wait(busy, timeout):
            conn: Connection = ready  # type: ignore[assignment]
            i = self._conns.index(conn)
            try:
                answer = conn.recv()
            except EOFError:
                raise RuntimeError("an ask process died") from None
            if answer == "started":
                self._starting.discard(i)
                continue
            del self._asking[i]
            if isinstance(answer, str):
                raise RuntimeError(f"an ask process failed: {answer}")
            out += answer
        return out

    @property
    def count(self) -> int:
        """The ask processes."""
        return len(self._conns)

    def pending(self, point: Point, key: int = -1) -> None:
        """The head registered the point a replica made under ``key`` (pending; -1: the
        head made it)."""
        self._log.append(("pending", point.handle.number, point.params, key))

    def final(self, point: Point) -> None:
        """A point of the head's study was told its outcome."""
        self._log.append(("final", self._proposer.finished(point)))

    def close(self) -> None:
        """Stop the processes (an ask in flight is abandoned)."""
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _unseen(self, i: int) -> list[Event]:
        events = self._log[self._cursor[i] - self._base :]
        self._cursor[i] = self._base + len(self._log)
        oldest = min(self._cursor)
        if oldest - self._base > 1000:  # every replica has seen these
            del self._log[: oldest - self._base]
            self._base = oldest
        return events


def _event_of(t: optuna.trial.FrozenTrial) -> Event:
    if t.state.is_finished():
        return ("final", t)
    return ("pending", t.number, dict(t.params), -1)


def _serve(fd: int, seed: int | None, spec: dict[str, Any]) -> None:
    """A replica: tell it what happened, ask, answer ``[(key, params), ...]``; until None."""
    from hpo.proposers import make_proposer
    from hpo.spec import StudySpec

    conn = Connection(fd)
    replica = _Replica(make_proposer(StudySpec.from_mapping(spec), seed))  # type: ignore[arg-type]
    try:
        conn.send("started")
        while (message := conn.recv()) is not None:
            events, keys = message
            try:
                answer: Any = replica.ask(events, keys)
            except Exception as exc:  # the head says it, and stops the study
                answer = f"{type(exc).__name__}: {exc}"
            conn.send(answer)
    except (EOFError, OSError, KeyboardInterrupt):  # the head is gone
        return


class _Replica:
    """One copy of the head's study: its own points pending by key, the head's by number."""

    def __init__(self, proposer: OptunaProposer) -> None:
        self.proposer = proposer
        self.mine: dict[int, Any] = {}  # key -> its Point, until the head numbers it
        self.pending: dict[int, Any] = {}  # head's number -> Point

    def ask(self, events: list[Event], keys: list[int]) -> list[tuple[int, dict[str, Any]]]:
        for event in events:
            self._apply(event)
        points = self.proposer.ask(len(keys))
        self.mine.update(zip(keys, points, strict=False))
        return [(key, p.params) for key, p in zip(keys, points, strict=False)]

    def _apply(self, event: Event) -> None:
        from hpo.proposers import Point

        if event[0] == "pending":
            _, number, params, key = event
            point = self.mine.pop(key, None) if key >= 0 else None
            if point is None:
                point = self.proposer.restore(params, None, pending=True)
            self.pending[number] = point
            return
        trial = event[1]
        point = self.pending.pop(trial.number, None)
        if point is None:
            self.proposer.study.add_trial(trial)
            return
        for step, value in trial.intermediate_values.items():
            point.handle.report(value, step)
        constraints = list(trial.constraints.values()) or None
        values = trial.values if trial.state.name == "COMPLETE" else None
        pruned = trial.state.name == "PRUNED"
        self.proposer.tell(Point(point.params, point.handle), values, constraints, pruned=pruned)


if __name__ == "__main__":
    _fd, _seed, _spec = sys.argv[1:4]
    _serve(int(_fd), int(_seed) if _seed else None, json.loads(_spec))
