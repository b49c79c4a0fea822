"""Active learning on scikit-learn's digits: train on a small labelled set, label the pool
points the model is least sure of, repeat. Each function is one workflow node."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def _data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.3, random_state=seed, stratify=y)


def initial(n_labelled: int, seed: int) -> dict:
    """The starting labelled set: ``n_labelled`` random pool indices."""
    x_pool, _, _, _ = _data(seed)
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(x_pool), size=n_labelled, replace=False)
    return {"labelled": sorted(int(i) for i in labelled), "accuracy": None}


def train_and_query(labelled: list[int], batch: int, seed: int) -> dict:
    """Fit on the labelled points, score on the test set, add the ``batch`` least certain
    pool points (lowest top-class probability) to the labelled set."""
    x_pool, x_test, y_pool, y_test = _data(seed)
    model = LogisticRegression(max_iter=2000).fit(x_pool[labelled], y_pool[labelled])
    accuracy = float(model.score(x_test, y_test))
    unlabelled = np.setdiff1d(np.arange(len(x_pool)), labelled)
    confidence = model.predict_proba(x_pool[unlabelled]).max(axis=1)
    queried = unlabelled[np.argsort(confidence)[:batch]]
    print(f"{len(labelled)} labelled: accuracy {accuracy:.4f}; querying {len(queried)}")
    return {
        "labelled": sorted(labelled + [int(i) for i in queried]),
        "accuracy": accuracy,
        "n_labelled": len(labelled),
    }


def summary(learn: dict, target: float) -> dict:
    """What the loop reached."""
    return {
        "accuracy": learn["accuracy"],
        "n_labelled": learn["n_labelled"],
        "reached_target": learn["accuracy"] >= target,
    }
