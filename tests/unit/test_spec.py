"""Study specs: what validates, and the one-line errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo import Study, StudySpec, load_spec_file
from idds.errors import SpecError

EXAMPLE = Path(__file__).parents[2] / "examples" / "quickstart" / "study.yaml"


def _spec(**over):
    base = {
        "name": "s",
        "objective": "objectives:quadratic",
        "space": {"x": {"type": "float", "low": -2, "high": 2}},
    }
    return {**base, **over}


def test_quickstart_spec_validates():
    spec, base = load_spec_file(EXAMPLE)
    assert spec.space["C"].log and spec.max_points == 30 and spec.parallel == 2
    assert base == EXAMPLE.parent
    assert StudySpec.from_mapping(spec.to_json()) == spec  # round trip through JSON


def test_numbers_written_as_yaml_strings_are_accepted():
    spec = StudySpec.from_mapping(_spec(space={"c": {"type": "float", "low": "1e-3", "high": 1}}))
    assert spec.space["c"].low == pytest.approx(1e-3)


@pytest.mark.parametrize(("over", "message"), [
    ({"paralel": 2}, "paralel: unknown key"),
    ({"space": {"x": {"type": "float", "low": 3, "high": 1}}}, "space.x: Value"),
    ({"space": {"x": {"type": "float", "low": 0, "high": 1, "log": True}}}, "low > 0"),
    ({"space": {"x": {"type": "floaty", "low": 0, "high": 1}}}, "space.x.type"),
    ({"space": {"x": {"type": "categorical", "choices": []}}}, "space.x.choices"),
    ({"proposer": "optuna:magic"}, "unknown proposer 'optuna:magic'"),
    ({"objective": "no colon"}, "objective:"),
    ({"max_points": 0}, "max_points:"),
    ({"direction": "up"}, "direction:"),
    ({"name": "bad name/"}, "name:"),
])  # fmt: skip
def test_bad_specs_name_the_field(over, message):
    with pytest.raises(SpecError) as info:
        StudySpec.from_mapping(_spec(**over))
    text = str(info.value)
    assert "\n" not in text
    assert message.replace("Value", "") in text or message in text


def test_low_greater_than_high_says_so():
    with pytest.raises(SpecError, match=r"space\.x: low \(3\) must not be greater than high"):
        StudySpec.from_mapping(_spec(space={"x": {"type": "float", "low": 3, "high": 1}}))


def test_objective_that_does_not_import_is_refused(tmp_path):
    spec = StudySpec.from_mapping(_spec(objective="no_such_module_here:f"))
    with pytest.raises(SpecError, match="module 'no_such_module_here' does not import"):
        Study(spec, base_dir=tmp_path)
    (tmp_path / "broken.py").write_text("import nonexistent_dependency\n")
    spec = StudySpec.from_mapping(_spec(objective="broken:f"))
    with pytest.raises(SpecError, match="ModuleNotFoundError"):
        Study(spec, base_dir=tmp_path)
    (tmp_path / "ok.py").write_text("x = 1\n")
    with pytest.raises(SpecError, match="has no callable 'f'"):
        Study(StudySpec.from_mapping(_spec(objective="ok:f")), base_dir=tmp_path)


def test_unparsable_file_is_one_line(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="does not parse") as info:
        load_spec_file(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.yaml")
