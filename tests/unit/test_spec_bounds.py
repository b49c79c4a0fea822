"""Bad spec input is refused with one line, quickly and in bounded memory: YAML alias bombs,
deep nesting, names with a trailing newline, parallelism past any cluster."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from idds.config import read_spec_file
from idds.errors import SpecError

TESTS = Path(__file__).parents[1]


def _bomb(levels: int = 10) -> str:
    """A 10**levels-element YAML list in a few hundred bytes (each anchor is ten of the last)."""
    rows = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(rows) + "]"


STUDY = """\
name: bomb
objective: objectives:quadratic
space: {{x: {{type: float, low: 0, high: 1}}}}
proposer: optuna:tpe
proposer_options: {{consider_endpoints: {bomb}}}
"""
WORKFLOW = "name: bomb\nnodes:\n  - {{name: a, callable: 'm:f', args: {{v: {bomb}}}}}\n"
TOYS = "name: bomb\nworkspace: ws.json\npoi: {bomb}\n"
CAMPAIGN = "name: bomb\nfiles: {bomb}\n"
SITES = "sites:\n  - {{name: s, kind: local, settings: {{x: {bomb}}}}}\n"

LOADERS = [
    ("hpo.spec", "load_spec_file", STUDY),
    ("dag.spec", "load_spec_file", WORKFLOW),
    ("toys.spec", "load_scan_file", TOYS),
    ("carousel.spec", "load_campaign_file", CAMPAIGN),
    ("gpu_sites.spec", "load_sites", SITES),
]

#: Runs a loader (or the CLI) with its address space capped 1 GiB above what the imports took:
#: an expanded bomb would need several.
BOUNDED = textwrap.dedent("""
    import importlib, resource, sys
    import idds.cli, hpo.spec, hpo.proposers, dag.spec, toys.spec, carousel.spec, gpu_sites.spec
    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.RLIM_INFINITY))
    module, attr, *args = sys.argv[1:]
    try:
        getattr(importlib.import_module(module), attr)(*args)
    except ValueError as exc:
        print("refused:", exc)
""")


def _bounded(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BOUNDED, *args],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip


@pytest.mark.parametrize(("module", "attr", "template"), LOADERS, ids=[m for m, _, _ in LOADERS])
def test_alias_bomb_is_refused_before_expansion(tmp_path, module, attr, template):
    path = tmp_path / "bomb.yaml"
    path.write_text(template.format(bomb=_bomb()))
    done = _bounded(module, attr, str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.strip()
    assert out.startswith("refused:") and "\n" not in out, out
    assert str(path) in out and "alias" in out, out


def test_alias_bomb_from_the_cli_exits_2_and_records_nothing(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(STUDY.format(bomb=_bomb()))
    db_file = tmp_path / "never.db"
    argv = repr(["--db", f"sqlite:///{db_file}", "hpo", "launch", str(path)])
    script = BOUNDED.replace(
        "module, attr, *args = sys.argv[1:]", f"module, attr, *args = 'idds.cli', 'main', {argv}"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().count("\n") == 0 and "alias" in done.stderr
    assert not db_file.exists()


def test_a_spec_with_a_few_aliases_still_loads(tmp_path):
    from hpo.spec import load_spec_file

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: aliases\n"
        "objective: objectives:quadratic\n"
        f"pythonpath: [{TESTS}]\n"
        "space:\n"
        "  x: &unit {type: float, low: 0.0, high: 1.0}\n"
        "  y: *unit\n"
        "  z: {<<: *unit, high: 2.0}\n"
    )
    spec, _ = load_spec_file(path)
    assert spec.space["y"].high == 1.0 and spec.space["z"].high == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]", "refers to itself"),
        ("[" * 5000 + "]" * 5000, "nested"),
        ("{a: " * 5000 + "1" + "}" * 5000, "nested"),
        (_bomb(6), "alias"),
    ],
    ids=["recursive", "deep-list", "deep-map", "bomb"],
)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_recursive_deep_or_huge_input_is_one_line(tmp_path, text, message, suffix):
    if suffix == ".json" and "&" in text:
        pytest.skip("JSON has no aliases")
    path = tmp_path / f"s{suffix}"
    path.write_text(text.replace("{a: ", '{"a": ') if suffix == ".json" else text)
    with pytest.raises(SpecError, match=message) as info:
        read_spec_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_read_spec_file_keeps_what_yaml_gives(tmp_path):
    path = tmp_path / "s.yaml"
    data = {"a": [1, 2.5, "x", None, True], "b": {"c": {"d": [{}]}}}
    path.write_text(yaml.safe_dump(data))
    assert read_spec_file(path) == data
    path.write_text("")
    assert read_spec_file(path) is None


EXAMPLES = Path(__file__).parents[2] / "examples"
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _study(**over):
    from hpo.spec import StudySpec

    data = {"name": "s", "objective": "objectives:quadratic", "space": SPACE, **over}
    return StudySpec.from_mapping(data)


def _workflow(name="w", node="a"):
    from dag.spec import WorkflowSpec

    return WorkflowSpec.from_mapping({"name": name, "nodes": [{"name": node, "callable": "m:f"}]})


def _toys(name):
    from toys.spec import ToyScanSpec

    data = {"name": name, "workspace": "low_count.json", "range": [0, 4]}
    return ToyScanSpec.from_mapping(data, base_dir=EXAMPLES / "toys")


def _campaign(name):
    from carousel.spec import CampaignSpec

    return CampaignSpec.from_mapping({"name": name})


def _site(name):
    from gpu_sites.spec import parse_sites

    return parse_sites({"sites": [{"name": name, "kind": "local"}]})


def _user(name):
    from idds.auth import check_user_name

    return check_user_name(name)


NAMED = {
    "user": _user,
    "study": lambda name: _study(name=name),
    "parameter": lambda name: _study(space={name: SPACE["x"]}),
    "segment": lambda name: _study(segments={name: {"max_points": 3}}),
    "workflow": lambda name: _workflow(name=name),
    "node": lambda name: _workflow(node=name),
    "toy scan": _toys,
    "campaign": _campaign,
    "site": _site,
}


@pytest.mark.parametrize("what", NAMED)
def test_a_name_with_a_trailing_newline_is_refused_in_one_line(what):
    make = NAMED[what]
    make("ok1")  # the same name without it is fine
    for bad in ("ok1\n", "ok1\n\n", "ok1\r\n", "\nok1", "ok 1"):
        with pytest.raises(SpecError) as info:
            make(bad)
        assert str(info.value) and "\n" not in str(info.value), (bad, str(info.value))


def _idds(capsys, *args):
    from idds.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_idds_users_add_refuses_a_name_with_a_trailing_newline(tmp_path, capsys):
    db = ["--db", f"sqlite:///{tmp_path / 'u.db'}"]
    code, _, err = _idds(capsys, *db, "users", "add", "alice\n")
    assert code == 2 and err.strip().count("\n") == 0 and "not a user name" in err
    code, out, _ = _idds(capsys, *db, "users", "list")
    assert code == 0 and "alice" not in out


def test_parallel_and_max_points_may_be_large_but_not_absurd():
    spec = _study(parallel=1_000_000, max_points=10**9)
    assert (spec.parallel, spec.max_points) == (1_000_000, 10**9)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"parallel": 10**6 + 1}, "parallel: Input should be less than or equal to 1000000"),
        ({"max_points": 10**30}, "max_points: Input should be less than or equal to 1000000000"),
        ({"max_attempts": 10**30}, "max_attempts: Input should be less than or equal to 1000"),
        ({"constraints": 10**30}, "constraints: Input should be less than or equal to 1000"),
        ({"space": {"x": {"type": "int", "low": 0, "high": 10**30}}}, "within ±2**53"),
        (
            {"space": {"x": {"type": "float", "low": 0, "high": 1e308, "step": 1e-308}}},
            "step: more than 1e+15 steps",
        ),
        (
            {"proposer": "optuna:grid", "space": {"x": {"type": "int", "low": 0, "high": 2**53}}},
            "optuna:grid: more than 10,000,000 points (at space.x)",
        ),
    ],
)
def test_huge_numbers_are_one_line_errors(over, message):
    with pytest.raises(SpecError, match=re.escape(message)) as info:
        _study(**over)
    assert "\n" not in str(info.value)
