"""``optuna:gp`` fits its Gaussian process to Yeo-Johnson warped values (output warping)."""

from __future__ import annotations

from unittest import mock

import optuna
import pytest

import hpo.proposers as proposers
from hpo.proposers import WarpedGPSampler, make_proposer
from hpo.spec import StudySpec

pytest.importorskip("torch")


def _spec(**over):
    space = {
        "x": {"type": "float", "low": -5, "high": 5},
        "y": {"type": "float", "low": -5, "high": 5},
    }
    return StudySpec.from_mapping({"name": "g", "objective": "m:f", "space": space, **over})


def _trials(values):
    dist = {"x": optuna.distributions.FloatDistribution(0, 100)}
    return [optuna.trial.create_trial(params={"x": float(i)}, distributions=dist, value=v)
            for i, v in enumerate(values)]  # fmt: skip


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_warping_keeps_the_order_and_evens_out_a_long_tail(direction):
    study = optuna.create_study(direction=direction)
    sign = 1 if direction == "minimize" else -1
    values = [sign * 2.0**k for k in range(12)]  # most points good, a long tail of bad ones
    warped = [t.value for t in proposers._warped(study, _trials(values))]
    rank = lambda v: sorted(range(len(v)), key=v.__getitem__)  # noqa: E731
    assert rank(warped) == rank(values)
    assert abs(skew(warped)) < abs(skew(values)) / 2
    assert [t.value for t in _trials(values)] == values  # the study's own trials untouched


def skew(values):
    import numpy as np
    from scipy.stats import skew as sample_skew

    return float(sample_skew(np.asarray(values)))


def test_the_gp_sampler_fits_the_warped_values():
    proposer = make_proposer(_spec(proposer="optuna:gp", max_points=30), seed=1)
    assert isinstance(proposer.study.sampler, WarpedGPSampler)
    calls = []
    real = proposers._warped

    def spy(study, trials):
        calls.append(len(trials))
        return real(study, trials)

    with mock.patch.object(proposers, "_warped", spy):
        for _ in range(14):
            (point,) = proposer.ask(1)
            proposer.tell(point, [point.params["x"] ** 2 + 10 ** abs(point.params["y"])])
    # Optuna's first 10 points are random; each later ask fitted the warped values.
    assert calls == [10, 11, 12, 13]


def test_output_warping_can_be_turned_off_and_is_checked():
    plain = make_proposer(
        _spec(proposer="optuna:gp", proposer_options={"output_warping": False}), 1
    )
    assert type(plain.study.sampler) is optuna.samplers.GPSampler
    multi = make_proposer(_spec(proposer="optuna:gp", direction=["minimize", "minimize"]), 1)
    assert type(multi.study.sampler) is optuna.samplers.GPSampler  # one objective only
    with pytest.raises(ValueError, match="output_warping"):
        make_proposer(_spec(proposer="optuna:gp", proposer_options={"output_warping": "yes"}), 1)
