"""The toy limits against pyhf's asymptotic ones: the same where the asymptotic formulae hold
(many events), different in the expected direction where they do not (a few events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idds.config import Settings
from toys import ToyScan
from toys.scan import collect
from toys.stats import BANDS, asymptotic_cls, asymptotic_limits, run_batch

EXAMPLES = Path(__file__).parents[2] / "examples" / "toys"


def _workspace(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def _toy_cls(workspace: dict, mu: float, toys: int) -> dict[str, tuple[float, float]]:
    task = {"workspace": workspace, "poi": "mu", "mu": mu, "toys": toys, "test_stat": "qtilde",
            "seed": 11, "batch": 0}  # fmt: skip
    return collect([run_batch(task)])[mu].cls()


@pytest.mark.slow
def test_high_count_toy_cls_agrees_with_the_asymptotic_cls_in_every_band():
    workspace = _workspace("high_count")
    toys = _toy_cls(workspace, 1.7, 400)
    asymptotic = asymptotic_cls(workspace, "mu", 1.7, "qtilde")
    for band in BANDS:
        value, error = toys[band]
        assert abs(value - asymptotic[band]) < 3 * error + 0.01, band


@pytest.mark.slow
def test_low_count_expected_bands_are_narrower_than_the_asymptotic_ones():
    """With 0.8 background events the b-only outcomes are a few counts: the asymptotic -2 sigma
    and +2 sigma limits are too far apart. At the asymptotic -2 sigma limit the toys' CLs of
    that band is still far above 0.05 (the toy limit is higher); at the asymptotic +2 sigma
    limit it is already below (the toy limit is lower)."""
    workspace = _workspace("low_count")
    asymptotic = asymptotic_limits(workspace, "mu", 0.95, "qtilde")
    low = _toy_cls(workspace, asymptotic["-2"], 200)["-2"]
    high = _toy_cls(workspace, asymptotic["+2"], 200)["+2"]
    assert low[0] - 3 * low[1] > 0.05
    assert high[0] + 3 * high[1] < 0.05


@pytest.mark.slow
def test_a_high_count_scan_finds_the_asymptotic_limits_within_its_errors(ray_address, tmp_path):
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'idds.db'}", ray_address=ray_address)
    scan = ToyScan(settings=settings, name="high", workspace=str(EXAMPLES / "high_count.json"),
                   range=[0, 5], toys=200, batch_size=100, points=4, tolerance=0.4,
                   max_steps=2, seed=2)  # fmt: skip
    result = scan.run(progress=False)
    asymptotic = asymptotic_limits(scan.spec.workspace, "mu", 0.95, "qtilde")
    # The -1 and -2 sigma bands read CLs where CLb is 16 % and 2.3 %: CLs+b near 1 - CL is then
    # a tail of one toy in a hundred or thousand, beyond what a quick scan throws.
    for band in ("obs", "0", "+1"):
        lim = result.limits[band]
        assert lim.value is not None, band
        assert abs(lim.value - asymptotic[band]) < 3 * lim.error + 0.05, (band, lim)
