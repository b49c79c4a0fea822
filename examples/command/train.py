"""A training script in the PanDA/iDDS HPO container convention: it reads its point from
input.json in its work dir and writes {"status": 0, "loss": ..., "message": ...} to output.json.
It also shows the SDK (hpo.params, hpo.checkpoint_dir) for scripts run by idds."""

import json
import sys

from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import cross_val_score

import hpo

point = hpo.params()  # the same as json.load(open("input.json"))
print(f"training with {point}")
X, y = load_digits(return_X_y=True)
model = SGDClassifier(alpha=point["alpha"], penalty=point["penalty"], random_state=0)
accuracy = cross_val_score(model, X, y, cv=3).mean()
(hpo.checkpoint_dir() / "last.json").write_text(json.dumps({"accuracy": accuracy}))
with open("output.json", "w") as f:
    json.dump({"status": 0, "loss": 1.0 - accuracy, "message": f"accuracy {accuracy:.4f}"}, f)
print("done", file=sys.stderr)
