"""Toy-scan specs: what validates, and the one-line errors for what does not."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

from toys.spec import ToyScanError, ToyScanSpec, check_model, check_range, load_scan_file

EXAMPLES = Path(__file__).parents[2] / "examples" / "toys"


def _spec(**over) -> ToyScanSpec:
    fields = {"name": "t", "workspace": "low_count.json", "range": [0, 4], **over}
    return ToyScanSpec.from_mapping(fields, base_dir=EXAMPLES)


def test_the_examples_load_with_their_workspace_read_and_poi_named():
    for name in ("high_count.yaml", "low_count.yaml"):
        spec = check_model(load_scan_file(EXAMPLES / name))
        assert spec.poi == "mu" and "channels" in spec.workspace
        check_range(spec)  # the examples bracket their limits
        assert ToyScanSpec.from_mapping(spec.to_json()) == spec  # round-trips through JSON


def test_defaults():
    spec = _spec()
    assert (spec.test_stat, spec.cl, spec.toys) == ("qtilde", 0.95, 1000)
    assert spec.tolerance == pytest.approx(4 / 50)
    assert (spec.batch_toys, spec.batches_per_point) == (500, 2)
    assert _spec(toys=30).batch_toys == 30


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"toys": 0}, "toys: must be at least 1 (got 0)"),
        ({"range": [3, 1]}, "range: [3, 1] must be [low, high]"),
        ({"range": [-1, 2]}, "qtilde tests a POI >= 0"),
        ({"cl": 1.5}, "cl: "),
        ({"tolerence": 0.1}, "tolerence: unknown key"),
        ({"workspace": "missing.json"}, "workspace: cannot read"),
    ],
)
def test_bad_fields_are_one_line_errors_naming_the_field(over, message):
    with pytest.raises(ToyScanError) as info:
        _spec(**over)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_workspace_pyhf_rejects():
    workspace = json.loads((EXAMPLES / "low_count.json").read_text())
    workspace["channels"][0]["samples"][0]["modifiers"][0]["type"] = "nosuchmodifier"
    with pytest.raises(ToyScanError, match="workspace: pyhf rejects it: InvalidSpecification"):
        check_model(_spec(workspace=workspace))


def test_an_unknown_poi_lists_the_parameters():
    with pytest.raises(ToyScanError, match=r"poi: 'sigma' is not a parameter .*mu"):
        check_model(_spec(poi="sigma"))


def test_a_range_outside_the_poi_bounds():
    with pytest.raises(ToyScanError, match=r"leaves the bounds of 'mu', \[0, 10\]"):
        check_model(_spec(range=[0, 20]))


def test_a_range_that_does_not_bracket_the_limit_suggests_one():
    with pytest.raises(ToyScanError) as info:
        check_range(check_model(_spec(range=[0, 1])))
    message = str(info.value)
    assert "does not bracket the limit: asymptotic CLs at 1 is" in message
    assert "try range: [0, 3.3]" in message  # 1.5 x the asymptotic +2 sigma limit, 2.18
    with pytest.raises(ToyScanError, match="asymptotic CLs at 2.5 is .* <= 0.05"):
        check_range(check_model(_spec(range=[2.5, 4])))


def test_a_spec_file_that_does_not_parse(tmp_path):
    path = tmp_path / "scan.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ToyScanError, match="does not parse"):
        load_scan_file(path)
    path.write_text(yaml.safe_dump(["not", "a", "mapping"]))
    with pytest.raises(ToyScanError, match="must be a mapping"):
        load_scan_file(path)


def test_the_public_api_is_what_we_mean_to_export():
    module = importlib.import_module("toys")
    assert set(module.__all__) == {
        "BANDS", "Limit", "Point", "ScanResult", "ToyScan", "ToyScanError", "ToyScanSpec",
        "load_scan", "load_scan_file",
    }  # fmt: skip
    for name in module.__all__:
        assert hasattr(module, name), name
