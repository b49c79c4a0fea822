"""The `idds` command says only what it has to: no Ray or Alembic chatter, a fast --help that
imports no plugin, an answer before Ray starts where one is known, and reads that create
nothing and say where they looked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from idds.cli import main

ROOT, TESTS = Path(__file__).parents[2], Path(__file__).parents[1]
HEAVY = ("ray", "optuna", "pyhf", "streamlit", "sklearn", "pandas", "sqlalchemy")
CHATTER = ("WARNING", "Token authentication", "Context impl", "Will assume", "alembic")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IDDS_DB_URL", "IDDS_HOME")}
    return {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}", **extra}


def _python(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _run_and_list_modules(args: list[str]) -> str:
    """Python code that runs `idds ARGS` and prints, last, the heavy modules it imported."""
    return (
        "import sys\nfrom idds.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('MODULES', [m for m in {HEAVY!r} if m in sys.modules])"
    )


def _spec(path: Path, name: str = "quiet") -> Path:
    path.write_text(yaml.safe_dump({
        "name": name, "objective": "objectives:quadratic", "max_points": 2, "parallel": 1,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}}, "seed": 1,
        "proposer": "optuna:random", "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    return path


def _idds(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_imports_no_plugin_and_lists_each_with_its_help(tmp_path):
    done = _python(_run_and_list_modules(["--help"]), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "MODULES []"
    assert "hpo        Hyperparameter optimisation studies." in done.stdout
    assert "toys       Toy-MC CLs upper limits of pyhf workspaces." in done.stdout
    assert "-v, --verbose" in done.stdout


def test_reads_in_an_empty_directory_create_nothing_and_say_where_they_looked(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for name in ("IDDS_DB_URL", "IDDS_HOME", "IDDS_WORK_DIR"):
        monkeypatch.delenv(name, raising=False)
    where = f"no database at {tmp_path / 'idds.db'}"
    for group, plural in (("hpo", "studies"), ("dag", "workflows"), ("toys", "toy scans")):
        code, out, _ = _idds(capsys, group, "list")
        assert code == 0 and out.startswith(f"no {plural}: {where}")
    code, _, err = _idds(capsys, "hpo", "show", "svc")
    assert code == 2 and err.startswith(f"error: no study named 'svc': {where}")
    code, _, err = _idds(capsys, "dag", "show", "wf")
    assert code == 2 and where in err
    code, _, err = _idds(capsys, "whoami")
    assert code == 2 and where in err
    code, out, err = _idds(capsys, "hpo", "list", "-f", "json")
    assert (code, json.loads(out)) == (0, []) and where in err
    assert list(tmp_path.iterdir()) == []


def test_a_second_launch_says_exists_already_without_starting_ray(tmp_path):
    spec = _spec(tmp_path / "s.yaml")
    db = ["--db", f"sqlite:///{tmp_path / 'idds.db'}"]
    first = _python(_run_and_list_modules([*db, "hpo", "launch", str(spec), "--detach"]), tmp_path)
    assert "recorded" in first.stdout, first.stderr
    again = _python(_run_and_list_modules([*db, "hpo", "launch", str(spec)]), tmp_path)
    assert "exists already" in again.stderr
    assert "'ray'" not in again.stdout.strip().splitlines()[-1]  # Ray was never imported


def test_list_and_show_print_json_and_csv(tmp_path, capsys):
    db = ["--db", f"sqlite:///{tmp_path / 'idds.db'}"]
    for name in ("one", "two"):
        assert _idds(capsys, *db, "hpo", "launch", str(_spec(tmp_path / "s.yaml")), "--name",
                     name, "--detach")[0] == 0  # fmt: skip
    code, out, _ = _idds(capsys, *db, "hpo", "list", "-f", "json", "--sort", "-name")
    assert code == 0
    items = json.loads(out)
    assert [i["name"] for i in items] == ["two", "one"] and items[0]["done"] == "0/2"
    code, out, _ = _idds(capsys, *db, "hpo", "list", "-f", "csv", "--limit", "1")
    assert out.splitlines()[0].startswith("name,user,state") and len(out.splitlines()) == 2
    code, out, _ = _idds(capsys, *db, "hpo", "list", "--state", "finished")
    assert code == 0 and len(out.splitlines()) == 2  # the header and its rule only
    code, out, _ = _idds(capsys, *db, "hpo", "show", "one", "-f", "json")
    assert (code, json.loads(out)) == (0, [])
    code, _, err = _idds(capsys, *db, "hpo", "show", "one", "--sort", "nope")
    assert code == 2 and "--sort: no column 'nope'" in err


@pytest.mark.slow
def test_a_launch_on_a_new_local_ray_prints_no_chatter_and_keeps_it_in_the_log(tmp_path):
    """A local Ray started by the command itself: where Ray's token warning comes from."""
    spec = _spec(tmp_path / "s.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "idds", "hpo", "launch", str(spec), "--no-progress"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "best value:" in done.stdout
    assert not [line for line in done.stderr.splitlines() if any(c in line for c in CHATTER)]
    log = tmp_path / "idds-work" / "idds.log"
    if "RAY_AUTH_MODE" not in os.environ:  # then Ray warns of its token on every start
        assert "Token authentication" in log.read_text()


def test_serve_prints_no_migration_notes(tmp_path, ray_address):
    db = f"sqlite:///{tmp_path / 'idds.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "idds", "--db", db, "--ray-address", ray_address, "serve",
         "--until-idle", "--poll", "0.2"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "serving" in done.stdout
    assert not [line for line in done.stderr.splitlines() if any(c in line for c in CHATTER)]
    verbose = subprocess.run(
        [sys.executable, "-m", "idds", "-v", "--db", f"sqlite:///{tmp_path / 'v.db'}", "hpo",
         "launch", str(_spec(tmp_path / "s.yaml")), "--detach"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Context impl SQLiteImpl" in verbose.stderr  # -v shows them


def test_sites_without_a_sites_file_say_how_to_give_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IDDS_SITES", raising=False)
    code, _, err = _idds(capsys, "--db", f"sqlite:///{tmp_path / 'x.db'}", "sites", "list")
    assert code == 2 and "give --sites sites.yaml or set IDDS_SITES" in err
    assert not (tmp_path / "x.db").exists()


def test_sites_status_shows_a_site_that_does_not_answer_as_unreachable(tmp_path, capsys):
    if find_spec("htcondor2") is not None:
        pytest.skip("the HTCondor bindings are installed: the grid site may answer")
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump({"sites": [{"name": "grid", "kind": "htcondor"}]}))
    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    code, out, err = _idds(capsys, *db, "sites", "status", "--sites", str(sites))
    assert code == 0, err
    assert out.splitlines()[2].split()[:2] == ["grid", "unreachable"]
    assert "htcondor2 is not installed" in err


KERNEL = """
from jupyter_client.manager import KernelManager
km = KernelManager(kernel_name="python3")
km.start_kernel(cwd={cwd!r})
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=120)
reply = kc.execute_interactive(
    "from idds.runtime import ensure_ray; ensure_ray(); import ray; print(ray.is_initialized())",
    timeout=240, output_hook=lambda msg: print(msg["content"].get("text", ""), end=""))
kc.stop_channels()
km.shutdown_kernel(now=False)  # SIGTERM where the kernel does not exit at once
"""


@pytest.mark.slow
def test_a_notebook_kernel_using_ray_stops_without_stack_traces(tmp_path):
    pytest.importorskip("jupyter_client")
    done = _python(KERNEL.format(cwd=str(tmp_path)), tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr
    assert "True" in done.stdout
    assert "SIGTERM received" not in done.stderr and "logging.cc" not in done.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_workflow_progress_bar_has_the_task_nodes_known_as_its_total(settings, capsys, tmp_path):
    from dag import Workflow

    nodes, log = str(TESTS / "workflow_nodes"), str(tmp_path / "log")
    state = Workflow({"name": "bar", "pythonpath": [nodes], "nodes": [
        {"name": "square", "callable": "nodes_for_tests:square", "foreach": "range(3)",
         "args": {"x": "${item}", "log": log}},
        {"name": "total", "callable": "nodes_for_tests:total", "after": ["square"],
         "args": {"log": log}},
    ]}, settings=settings).run(progress=True)  # fmt: skip
    assert state == "finished"
    bar = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line]
    assert bar and all("|" in line for line in bar)  # every frame has a total (a bar)
    assert "4/4" in bar[-1]  # the fan-out's three parts and the last node
