"""Objectives the tests run as real evaluations (imported on Ray workers)."""

from __future__ import annotations

import json
import math
import os
import time


def quadratic(params: dict) -> float:
    return (params["x"] - 1.0) ** 2 + params.get("y", 0) ** 2


def fails_above(params: dict) -> float:
    """Raises for x > 0: a failed trial that must not stop the study."""
    if params["x"] > 0:
        raise ValueError(f"x={params['x']:.3f} is out of the model's range")
    return quadratic(params)


def nan_above(params: dict) -> float:
    return math.nan if params["x"] > 0 else quadratic(params)


def sleepy(params: dict) -> float:
    time.sleep(params.get("sleep", 30))
    return 0.0


def crash_first(params: dict) -> float:
    """Kills its worker on a first attempt (marker file absent), succeeds on the retry."""
    marker = f"{params['log']}.{params['x']:.12f}"
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return quadratic(params)


def recorded(params: dict) -> float:
    """Appends its point to the file ``params['log']`` (one line per execution)."""
    time.sleep(params.get("sleep", 0.0))
    with open(params["log"], "a") as f:
        f.write(json.dumps({"x": params["x"]}) + "\n")
    return quadratic(params)


def two_objectives(params: dict) -> list[float]:
    return [params["x"] ** 2, (params["x"] - 1.0) ** 2]


def constrained(params: dict) -> dict:
    """Minimise x**2 subject to x >= 0.5 (constraint 0.5 - x <= 0)."""
    return {"value": params["x"] ** 2, "constraints": [0.5 - params["x"]]}


def sleepy_value(params: dict) -> float:
    time.sleep(params["sleep"])
    return quadratic(params)


def with_report(params: dict) -> dict:
    """Reports two steps and returns user attributes; fails for category b with x > 1."""
    import hpo

    for step in range(2):
        hpo.report(step, params["x"] * (2 - step))
    if params["k"] == "b" and params["x"] > 1:
        raise RuntimeError("diverged")
    return {"value": params["x"] ** 2, "user_attrs": {"tag": f"k={params['k']}"}}


def optuna_style(trial) -> float:
    """An objective written for Optuna, with a define-by-run (conditional) space."""
    x = trial.suggest_float("x", -2.0, 2.0)
    kind = trial.suggest_categorical("kind", ["plain", "shifted"])
    shift = trial.suggest_int("shift", 0, 3) if kind == "shifted" else 0
    trial.report((x - 1.0) ** 2 + 1.0, 0)
    trial.set_user_attr("kind_used", kind)
    return (x - 1.0) ** 2 + shift


def kills_worker(params: dict) -> float:
    """Kills the worker process running it for x > 0 (a segfaulting library, say)."""
    if params["x"] > 0:
        os.kill(os.getpid(), 9)
    return quadratic(params)


def no_secrets(params: dict) -> float:
    """Fails where its environment holds a credential of the platform, Ray or a database."""
    from idds.secrets import SECRET_NAMES

    found = sorted(n for n in SECRET_NAMES | {"EXTRA_SECRET"} if n in os.environ)
    if found:
        raise RuntimeError(f"the evaluation sees {', '.join(found)}")
    return quadratic(params)


def leaks_to_stderr(params: dict) -> float:
    """Prints a secret to stderr and fails: its error and logs are its owner's only."""
    import sys

    print("api_key=TOPSECRET-123", file=sys.stderr)
    raise RuntimeError("failed with api_key=TOPSECRET-123")


def pruned_above(params: dict) -> float:
    """Reports one step, then stops early (is pruned) where x > 0."""
    import hpo

    hpo.report(0, params["x"] ** 2 + 1.0)
    if params["x"] > 0:
        raise hpo.Pruned()
    return params["x"] ** 2


def short_named(t) -> float:  # noqa: ANN001 - an Optuna user's objective, unannotated
    """An Optuna-style objective whose trial parameter is not named ``trial``."""
    x = t.suggest_float("x", -2.0, 2.0)
    return (x - 1.0) ** 2


def always_fails(params: dict) -> float:
    """Fails every time, with the same error."""
    raise ValueError("the model diverged")


def tiny(params: dict) -> float:
    """Costs microseconds."""
    return params["x"] ** 2


def pruned_at_once(params: dict) -> float:
    """Reports one step and stops as if pruned."""
    import hpo

    hpo.report(0, params["x"])
    raise hpo.Pruned()


def jittery(params: dict) -> float:
    """Takes a random few tens of milliseconds (unseeded: the order results arrive in varies)."""
    import random

    time.sleep(random.random() * 0.05)  # noqa: S311 - timing noise, not security
    return (params["x"] - 0.3) ** 2 + params["y"] ** 2


def segment_aware(params: dict) -> dict:
    """Records which segment it served (what a segment's training script reads)."""
    import hpo

    return {"value": params["x"], "user_attrs": {"segment": hpo.segment()}}
