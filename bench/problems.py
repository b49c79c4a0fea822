"""Test functions for the proposer quality benchmark (all minimised), importable by workers."""

from __future__ import annotations

import math

import numpy as np

#: name -> (search space, known optimum or None)
SPACES: dict[str, tuple[dict, float | None]] = {
    "branin": (
        {"x1": {"type": "float", "low": -5.0, "high": 10.0},
         "x2": {"type": "float", "low": 0.0, "high": 15.0}},
        0.397887,
    ),
    "hartmann6": ({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)},
                  -3.32237),
    "rosenbrock5": ({f"x{i}": {"type": "float", "low": -2.048, "high": 2.048} for i in range(5)},
                    0.0),
    "svc": (
        {"C": {"type": "float", "low": 1e-3, "high": 1e3, "log": True},
         "gamma": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}},
        None,  # an error rate: reported as is
    ),
}  # fmt: skip


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
               [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])  # fmt: skip
_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                      [2329, 4135, 8307, 3736, 1004, 9991],
                      [2348, 1451, 3522, 2883, 3047, 6650],
                      [4047, 8828, 8732, 5743, 1091, 381]])  # fmt: skip
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-np.sum(_ALPHA * np.exp(-np.sum(_A * (x - _P) ** 2, axis=1))))


def rosenbrock5(p: dict) -> float:
    x = np.array([p[f"x{i}"] for i in range(5)])
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def svc(p: dict) -> float:
    """The error rate (1 - 3-fold accuracy) of an SVC on the digits data."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    return 1.0 - float(cross_val_score(SVC(C=p["C"], gamma=p["gamma"]), X, y, cv=3).mean())
