"""Workflows run on the scheduling core: Ray runs the nodes, the database keeps their state."""

from __future__ import annotations

import collections
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from dag import Workflow, load_workflow
from idds.cli import main
from idds.db import connect

HERE = Path(__file__).parents[1] / "workflow_nodes"


def executions(log: Path) -> collections.Counter:
    if not log.exists():
        return collections.Counter()
    return collections.Counter(json.loads(line) for line in log.read_text().splitlines())


def spec(name, *nodes, **extra):
    return {"name": name, "pythonpath": [str(HERE)], "nodes": list(nodes), **extra}


def test_outputs_flow_by_name_through_fan_out_fan_in_and_files(settings, tmp_path):
    log = str(tmp_path / "log")
    wf = Workflow(spec(
        "flow",
        {"name": "make", "callable": "nodes_for_tests:make", "args": {"n": 4, "log": log}},
        {"name": "square", "callable": "nodes_for_tests:square", "foreach": "make",
         "args": {"x": "${item}", "log": log}},
        {"name": "total", "callable": "nodes_for_tests:total", "after": ["square"],
         "args": {"log": log}},
        {"name": "model", "callable": "nodes_for_tests:write_model", "files": ["model.txt"],
         "args": {"log": log}},
        {"name": "report", "command": ["sh", "-c", "cat %IN > seen.json; printf '{\"ok\": 1}' > output.json"],
         "args": {"sum": "${total}", "weights": "${model.files['model.txt']}"}},
        output="{'total': total, 'report': report}",
    ), settings=settings)  # fmt: skip
    assert wf.run() == "finished"
    assert wf.output() == {"total": 0 + 1 + 4 + 9, "report": {"ok": 1}}
    nodes = {n.path: n for n in wf.nodes()}
    assert nodes["square"].output == [0, 1, 4, 9] and nodes["square[3]"].state == "succeeded"
    weights = nodes["model"].output["files"]["model.txt"]
    assert Path(weights).read_text() == "weights"
    seen = json.loads(
        (Path(settings.work_dir) / "dag" / "flow" / "report" / "seen.json").read_text()
    )
    assert seen == {"sum": 14, "weights": weights}
    assert all(n == 1 for n in executions(Path(log)).values())  # nothing ran twice


def test_a_failed_node_retried_by_hand_lets_the_workflow_go_on(settings, tmp_path):
    log, flag = str(tmp_path / "log"), tmp_path / "flag"
    wf = Workflow(spec(
        "retry",
        {"name": "fragile", "callable": "nodes_for_tests:needs_flag", "max_attempts": 1,
         "args": {"flag": str(flag), "log": log}},
        {"name": "after", "callable": "nodes_for_tests:uses", "args": {"log": log},
         "after": ["fragile"]},
        {"name": "independent", "callable": "nodes_for_tests:make", "args": {"n": 1, "log": log}},
    ), settings=settings)  # fmt: skip
    assert wf.run() == "failed"
    nodes = {n.path: n for n in wf.nodes()}
    assert nodes["fragile"].state == "failed" and "flag is missing" in nodes["fragile"].error
    assert nodes["after"].state == "blocked" and nodes["independent"].state == "succeeded"
    flag.write_text("")  # the fix
    assert wf.retry() == ["fragile"]
    assert wf.run() == "finished"
    assert executions(Path(log)) == {"needs_flag": 2, "uses": 1, "make": 1}
    assert {n.path: n for n in wf.nodes()}["after"].output == "used fixed"


def test_suspend_stops_releasing_nodes_and_resume_goes_on(settings, tmp_path):
    log = str(tmp_path / "log")
    wf = Workflow(spec(
        "pause", {"name": "s", "callable": "nodes_for_tests:square", "foreach": "range(8)",
                  "args": {"x": "${item}", "log": log, "sleep": 0.5}}, parallel=1,
    ), settings=settings)  # fmt: skip
    wf.create()
    states = []
    runner = threading.Thread(target=lambda: states.append(wf.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while not executions(Path(log)) and time.monotonic() < deadline:
        time.sleep(0.1)
    wf.suspend()
    runner.join(60)
    assert states == ["suspended"] and wf.state == "suspended"
    done_before = sum(executions(Path(log)).values())
    assert 1 <= done_before < 8
    assert wf.run() == "finished"
    assert executions(Path(log)) == {f"square{i}": 1 for i in range(8)}


def test_cancel_from_another_process_stops_the_head(settings, tmp_path):
    log = str(tmp_path / "log")
    wf = Workflow(spec(
        "stopme", {"name": "s", "callable": "nodes_for_tests:square", "foreach": "range(50)",
                   "args": {"x": "${item}", "log": log, "sleep": 0.3}}, parallel=2,
    ), settings=settings)  # fmt: skip
    wf.create()
    states = []
    runner = threading.Thread(target=lambda: states.append(wf.run()))
    runner.start()
    time.sleep(2)
    load_workflow("stopme", settings=settings).cancel()
    runner.join(60)
    assert states == ["cancelled"]
    assert sum(executions(Path(log)).values()) < 50


def test_an_hpo_study_is_a_node(settings, tmp_path):
    import dataclasses

    from idds import auth

    tests = str(Path(__file__).parents[1])
    # Among registered users, bob's workflow creates its study as bob's (on a Ray worker,
    # which holds no token).
    engine = connect(settings.db_url)
    admin = auth.add_user(engine, settings, "alice")
    bob = auth.add_user(engine, dataclasses.replace(settings, token=admin), "bob")
    engine.dispose()
    settings = dataclasses.replace(settings, token=bob)
    wf = Workflow(spec(
        "tune",
        {"name": "search", "study": {
            "objective": "objectives:quadratic", "pythonpath": [tests], "max_points": 6,
            "parallel": 2, "proposer": "optuna:random", "seed": 1,
            "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}}}},
        {"name": "use", "callable": "nodes_for_tests:square", "args": {
            "x": "${round(search.best_params.x)}", "log": str(tmp_path / "log")}},
    ), settings=settings)  # fmt: skip
    assert wf.run() == "finished"
    found = {n.path: n for n in wf.nodes()}["search"].output
    assert found["study"] == "tune.search" and found["n_trials"] == 6
    import hpo

    study = hpo.load_study("tune.search", settings=settings)
    assert study.best.value == pytest.approx(found["best_value"])
    assert wf.user == "bob" and study.user == "bob"


def _idds(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_launch_show_logs_and_bad_input(settings, tmp_path, capsys):
    db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
    good = tmp_path / "wf.yaml"
    good.write_text(json.dumps(spec(
        "cli-wf", {"name": "hello", "command": "sh -c 'echo hello from ${params.who}'"},
        {"name": "bye", "command": ["sh", "-c", "echo bye"], "after": ["hello"]},
        params={"who": "a"},
    )))  # fmt: skip
    code, out, err = _idds(
        capsys, *db, "dag", "launch", str(good), "--set", "who=tests", "--no-progress"
    )
    assert code == 0, err
    assert "workflow 'cli-wf' finished: 2 succeeded" in out
    code, out, _ = _idds(capsys, *db, "dag", "show", "cli-wf")
    assert code == 0 and "bye [command] <- hello" in out and out.count("succeeded") >= 2
    if shutil.which("dot"):  # graphviz is optional; .ci/run installs it
        png = tmp_path / "g.png"
        code, out, _ = _idds(capsys, *db, "dag", "show", "cli-wf", "--png", str(png))
        assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    code, out, _ = _idds(capsys, *db, "dag", "logs", "cli-wf", "hello")
    assert code == 0 and "hello from tests" in out
    code, out, _ = _idds(capsys, *db, "dag", "list")
    assert "cli-wf" in out and "finished" in out

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        json.dumps(
            spec(
                "bad-wf",
                {"name": "a", "callable": "m:f", "after": ["b"]},
                {"name": "b", "callable": "m:f", "after": ["a"]},
            )
        )
    )
    code, _, err = _idds(capsys, *db, "dag", "launch", str(bad))
    assert code == 2 and "a cycle" in err and len(err.strip().splitlines()) == 1
    code, _, err = _idds(capsys, *db, "dag", "show", "bad-wf")
    assert code == 2 and "no workflow named 'bad-wf'" in err  # nothing was written


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_toy_scan_is_a_node(settings, tmp_path):
    examples = Path(__file__).parents[2] / "examples" / "toys"
    wf = Workflow(spec(
        "limits",
        {"name": "scan", "toys": {
            "workspace": str(examples / "high_count.json"), "range": [0, 5], "toys": 50,
            "batch_size": 50, "points": 3, "max_steps": 1, "seed": 3}},
        {"name": "judge", "if": "scan.limits.obs.value < 5",
         "then": {"nodes": [{"name": "ok", "command": ["true"]}]}},
    ), settings=settings)  # fmt: skip
    assert wf.run() == "finished"
    out = {n.path: n for n in wf.nodes()}["scan"].output
    assert out["scan"] == "limits.scan" and out["toys"] == 3 * 2 * 50  # both hypotheses
    assert set(out["limits"]) >= {"obs", "0"}
    from toys import load_scan

    assert load_scan("limits.scan", settings=settings).result().toys == out["toys"]
