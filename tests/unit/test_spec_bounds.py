"""Bad spec input is refused with one line, quickly and in bounded memory: YAML alias bombs,
deep nesting, names with a trailing newline, parallelism past any cluster."""

from __future__ import annotations

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
