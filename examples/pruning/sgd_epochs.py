"""A training loop that reports its validation error after each epoch and stops early when
the study's pruner says so: SGDClassifier trained with partial_fit on the digits data."""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

import hpo

EPOCHS = 20


def objective(params: dict) -> float:
    X, y = load_digits(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, random_state=0)
    model = SGDClassifier(alpha=params["alpha"], eta0=params["eta0"],
                          learning_rate="constant", random_state=0)  # fmt: skip
    error = 1.0
    for epoch in range(EPOCHS):
        model.partial_fit(X_train, y_train, classes=np.unique(y))
        error = 1.0 - model.score(X_valid, y_valid)
        hpo.report(epoch, error)
        time.sleep(0.1)  # a real epoch takes longer; this lets the head's advice arrive
        if hpo.should_prune():
            raise hpo.Pruned()  # recorded as pruned with its last reported error
    return error
