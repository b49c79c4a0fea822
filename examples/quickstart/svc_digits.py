"""The quickstart's objective: 3-fold cross-validated accuracy of an SVC on the digits data."""

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC


def objective(params: dict) -> float:
    X, y = load_digits(return_X_y=True)
    model = SVC(C=params["C"], gamma=params["gamma"])
    return float(cross_val_score(model, X, y, cv=3).mean())
