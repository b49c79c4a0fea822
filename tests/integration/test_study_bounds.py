"""A study that asks for more parallelism than any cluster has runs within what this one has:
a bounded batch asked of the proposer at a time, in bounded memory."""

from __future__ import annotations

import resource
from pathlib import Path

import ray

import hpo
import hpo.run
from idds.tasks import TaskState

TESTS = str(Path(__file__).parents[1])


def test_parallel_of_a_million_runs_its_few_points_in_bounded_memory(settings, monkeypatch):
    asked: list[int] = []
    make = hpo.run.make_proposer

    def counting(spec, seed):
        proposer = make(spec, seed)
        ask = proposer.ask

        def counted(n):
            asked.append(n)
            if n > 1000:  # a bounded batch, whatever parallel says
                raise RuntimeError(f"asked for {n} points at once")
            return ask(n)

        proposer.ask = counted
        return proposer

    monkeypatch.setattr(hpo.run, "make_proposer", counting)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    study = hpo.Study(
        settings=settings, name="wide", objective="objectives:quadratic",
        space={"x": {"type": "float", "low": -2.0, "high": 2.0}},
        proposer="optuna:random", seed=1, pythonpath=[TESTS],
        parallel=1_000_000, max_points=10**9, max_time=3.0,
    )  # fmt: skip
    study.optimize(progress=False)
    cpus = int(ray.cluster_resources()["CPU"])
    assert asked and max(asked) <= cpus, asked
    trials = study.trials
    finished = [t for t in trials if t.state == TaskState.SUCCEEDED]
    assert finished and len(trials) <= len(finished) + cpus
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 500, grown_mib
