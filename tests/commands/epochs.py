"""A command payload that reports per epoch through the SDK and stops when advised."""

import json
import sys
import time
from pathlib import Path

import hpo

point = hpo.params()
for epoch in range(12):
    loss = (point["x"] - 1.0) ** 2 + 1.0 / (epoch + 1)
    hpo.report(epoch, loss)
    time.sleep(0.3)
    if hpo.should_prune():
        sys.exit(0)  # recorded as pruned at its last report
Path("output.json").write_text(json.dumps({"status": 0, "loss": loss}))
