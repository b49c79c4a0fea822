"""The toy scan's statistics and plan: tail fractions, CLs, limits, the next step, seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from toys import scan, stats
from toys.spec import ToyScanSpec

EXAMPLES = Path(__file__).parents[2] / "examples" / "toys"


def _spec(**over) -> ToyScanSpec:
    fields = {"name": "t", "workspace": "low_count.json", "range": [0, 4], "toys": 100,
              "batch_size": 50, "points": 4, "tolerance": 0.05, **over}  # fmt: skip
    return ToyScanSpec.from_mapping(fields, base_dir=EXAMPLES)


def _batch(mu: float, cls_value: float, n: int = 1000) -> dict:
    """A batch whose CLs is ``cls_value`` for every band: every background toy is beyond the
    observed value and the bands' quantiles; that fraction of the s+b toys is too."""
    k = round(cls_value * n)
    return {"mu": mu, "batch": 0, "q_obs": 1.0, "q_sb": [5.0] * k + [0.0] * (n - k),
            "q_b": [2.0] * n, "failed": 0}  # fmt: skip


def test_tail_counts_ties_as_extreme():
    values = stats.sorted_array([0.0, 1.0, 1.0 + 1e-9, 2.0, 3.0])
    frac = stats.tail(values, 1.0)
    assert (frac.k, frac.n) == (4, 5)
    assert stats.tail(values, 3.5).k == 0


def test_cls_is_the_ratio_of_tail_fractions_with_a_binomial_error():
    q_sb = stats.sorted_array([0.0] * 90 + [5.0] * 10)  # CLs+b = 0.1
    q_b = stats.sorted_array([0.0] * 50 + [5.0] * 50)  # CLb = 0.5
    value, error = stats.cls(q_sb, q_b, 1.0)
    assert value == pytest.approx(0.2)
    expected = 0.2 * math.hypot(math.sqrt(0.1 * 0.9 / 100) / 0.1, math.sqrt(0.25 / 100) / 0.5)
    assert error == pytest.approx(expected)


def test_expected_bands_read_background_quantiles_in_order():
    q_b = stats.sorted_array(np.linspace(0, 10, 1001))
    values = stats.band_values(0.3, q_b)
    assert values["obs"] == 0.3
    assert values["-2"] > values["-1"] > values["0"] > values["+1"] > values["+2"]
    assert values["0"] == pytest.approx(5.0)


def test_limit_is_exact_for_an_exponential_cls_by_a_local_log_linear_fit():
    points = scan.collect(_batch(mu, math.exp(-mu), 100000) for mu in (1.0, 2.0, 3.0, 4.0))
    lim = scan.limit(points, "obs", 0.1)
    assert lim.status == "ok" and lim.bracket == (2.0, 3.0)
    # exp(-mu) sampled at 1e-5 resolution: the crossing is ln(10) to that resolution.
    assert lim.value == pytest.approx(math.log(10), abs=1e-3)
    assert 0 < lim.stat < 0.05
    assert lim.interp == 0  # the fit over four points sets it, not the bracket


def test_two_close_points_with_noisy_cls_do_not_make_the_error_small():
    """CLs 0.073 and 0.047 at 1.00 and 1.02 (one toy-noise apart; the curve falls like
    exp(-3 mu)): the bracket alone gives a slope of 22 per unit and an error of 0.01; the
    fit over the neighbours gives the slope of the curve and an error to match."""
    curve = {1.00: 0.073, 1.02: 0.047, 0.7: 0.14, 1.14: 0.055, 1.5: 0.017}
    points = scan.collect(_batch(mu, c, 2000) for mu, c in curve.items())
    lim = scan.limit(points, "obs", 0.05)
    assert lim.bracket == (1.0, 1.02)
    assert lim.error > 0.03
    assert 1.0 < lim.value < 1.25


def test_limit_says_when_the_range_does_not_reach_the_crossing():
    points = scan.collect(_batch(mu, 0.5) for mu in (1.0, 2.0))
    assert scan.limit(points, "obs", 0.05).status == "above"
    points = scan.collect(_batch(mu, 0.01) for mu in (1.0, 2.0))
    # CLs(0) = 1 anchors the curve: a crossing below the first point is still bracketed.
    assert scan.limit(points, "obs", 0.05).bracket == (0.0, 1.0)


def test_first_step_is_the_coarse_grid_without_zero():
    spec = _spec()
    assert scan.coarse_grid(spec) == [1.0, 2.0, 3.0, 4.0]
    assert scan.next_step({}, spec) == {m: 2 for m in (1.0, 2.0, 3.0, 4.0)}


def test_next_step_adds_a_point_where_interpolation_decides_and_toys_where_statistics_do():
    spec = _spec(tolerance=0.05)
    # CLs = exp(-mu^3 / 14) crosses 0.05 at 3.47, between 3 and 4: a parabola in log CLs
    # over the four points misses them by far more than their errors, so the fit's error
    # says the crossing is not known there.
    curve = scan.collect(_batch(m, math.exp(-(m**3) / 14), n=100000) for m in (1.0, 2.0, 3.0, 4.0))
    want = scan.next_step(curve, spec)
    new = set(want) - {1.0, 2.0, 3.0, 4.0}
    assert len(new) == 1
    assert 3.0 < new.pop() < 3.6
    few = scan.collect(_batch(mu, math.exp(-mu), n=50) for mu in (2.9, 3.0, 3.1))
    more = scan.next_step(few, spec)
    assert set(more) <= {2.9, 3.0, 3.1} and more  # the bracket gets toys, no new points


def test_next_step_is_empty_once_every_limit_is_known():
    points = scan.collect(
        _batch(mu, math.exp(-mu), n=200000) for mu in (2.97, 2.98, 2.99, 3.0, 3.01)
    )
    assert scan.next_step(points, _spec(tolerance=0.05)) == {}


def test_batch_seeds_are_deterministic_and_differ_by_point_and_batch():
    seed = stats.batch_seed(7, 1.5, 0)
    assert seed == stats.batch_seed(7, 1.5, 0)
    assert len({seed, stats.batch_seed(7, 1.5, 1), stats.batch_seed(7, 1.25, 0),
                stats.batch_seed(8, 1.5, 0)}) == 4  # fmt: skip


def test_a_batch_gives_the_same_toys_for_the_same_seed():
    workspace = json.loads((EXAMPLES / "low_count.json").read_text())
    task = {"workspace": workspace, "poi": "mu", "mu": 1.0, "toys": 8, "test_stat": "qtilde",
            "seed": 3, "batch": 0}  # fmt: skip
    first, again = stats.run_batch(task), stats.run_batch(task)
    assert first.pop("cpu_s") >= 0 and again.pop("cpu_s") >= 0  # the one thing that differs
    assert first == again
    assert len(first["q_sb"]) + first["failed"] // 2 >= 4 and first["q_obs"] >= 0
    assert stats.run_batch({**task, "batch": 1})["q_sb"] != first["q_sb"]


def test_a_scan_is_recorded_once_under_its_parent_and_loads_by_name(engine, tmp_path):
    from idds.config import Settings
    from idds.errors import Exists, NotFound
    from idds.records import NewOwner, Records
    from toys import ToyScan, ToyScanError, load_scan

    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(db_url=url, work_dir=tmp_path, user="alice")
    records = Records(engine)
    flow = records.create(NewOwner(kind="workflow", name="flow", spec={}), user="alice")
    scan = ToyScan(_spec(name="flow.scan"), settings=settings, check=False)
    scan_id = scan.create(user="alice", parent_id=flow)
    with pytest.raises(Exists, match=r"`idds toys resume flow.scan`"):
        scan.create(user="alice", parent_id=flow)
    assert not issubclass(Exists, ToyScanError)  # spec errors and a taken name differ
    loaded = load_scan("flow.scan", settings=settings)
    assert (loaded.owner_id, loaded.state, loaded.user) == (scan_id, "active", "alice")
    assert [o.name for o in records.owners("toyscan", parent_id=flow)] == ["flow.scan"]
    assert loaded.result().steps == 0 and loaded.cancel() == 0
    assert load_scan("flow.scan", settings=settings).state == "cancelled"
    with pytest.raises(NotFound, match="no toy scan named 'nope'"):
        load_scan("nope", settings=settings)


def test_a_limit_within_the_tolerance_still_gets_toys_while_its_tail_holds_a_few():
    """Log CLs of a tail of two or three toys is too skewed for its error to be trusted: the
    bracket ends get more toys even where the error is already below the tolerance."""
    points = scan.collect(_batch(mu, math.exp(-mu), n=100) for mu in (1.0, 2.0, 3.0, 4.0))
    spec = _spec(tolerance=3.0)
    assert all(scan.converged(lim, 3.0) for lim in scan.limits(points, 0.05).values())
    want = scan.next_step(points, spec)
    assert want and set(want) <= {2.0, 3.0, 4.0}
