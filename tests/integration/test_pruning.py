"""Pruning from a real training loop (examples/pruning): evaluations stop early."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpo

EXAMPLE = Path(__file__).parents[2] / "examples" / "pruning" / "study.yaml"


@pytest.mark.slow
def test_pruner_stops_evaluations_early(settings):
    if not settings.db_url.startswith("sqlite"):
        pytest.skip("pruning does not depend on the database: run once, on SQLite")
    spec, base = hpo.load_spec_file(EXAMPLE)
    study = hpo.Study(spec, settings=settings, base_dir=base)
    study.optimize(progress=False)
    trials = study.trials
    assert len(trials) == 16
    assert all(t.state == "succeeded" for t in trials), [t.error for t in trials if t.error]
    pruned = [t for t in trials if t.pruned]
    full = [t for t in trials if not t.pruned]
    assert pruned, "the median pruner stopped no evaluation"
    for t in pruned:
        assert len(t.intermediate_values) < 20  # stopped before its last epoch
        last = max(t.intermediate_values)
        assert t.value == pytest.approx(t.intermediate_values[last])
    for t in full:
        assert len(t.intermediate_values) == 20
    assert study.best in full  # a pruned evaluation is never the best
