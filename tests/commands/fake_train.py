"""A command payload for the tests: behaves as its point's `mode` says."""

import json
import os
import sys
import time
from pathlib import Path

point = json.loads(Path("input.json").read_text())
mode = point.get("mode", "ok")
print(f"point {point}")
ckpt = Path(os.environ["IDDS_TASK_DIR"]) / "checkpoints" / "state.json"
if mode == "exit":
    print("something went wrong", file=sys.stderr)
    sys.exit(3)
if mode == "sleep":
    Path("pid").write_text(str(os.getpid()))
    time.sleep(60)
if mode == "nap":  # runs measurably long
    time.sleep(0.3)
if mode == "resume":  # dies on its first attempt after writing a checkpoint
    if not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps({"epoch": 5}))
        sys.exit(1)
    point["x"] = json.loads(ckpt.read_text())["epoch"]
if mode == "no-output":
    sys.exit(0)
output = {"status": 0, "loss": (point["x"] - 1.0) ** 2, "message": "fine"}
if mode == "status":
    output = {"status": 1, "loss": None, "message": "diverged"}
if mode == "nan":
    output = {"status": 0, "loss": "not a number"}
Path(sys.argv[1]).write_text(json.dumps(output))
