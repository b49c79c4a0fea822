"""The network to PostgreSQL cut while a study runs: packets to and from the database's port
dropped (``iptables``, on a throwaway cluster of the test's own), not a server that stops and
refuses connections. Nothing answers, nothing refuses: a head that waited on its socket for
TCP to give up would hang for a quarter of an hour, saying nothing.

What must hold: the head notices within seconds and says the database is away (one warning
line), keeps the results it holds, and once the network is back goes on; it exits 0 with every
point recorded once and nothing that ran before the cut run again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from head_kills import executions, point, recorded_study, study_counts, wait_for_points

from idds import tasks as tq

pytestmark = [pytest.mark.faults, pytest.mark.slow]
POINTS = 60
CUT_S = 45
NOTICED_WITHIN_S = 40  # timeouts of 10 s: unacknowledged data, then a new connection


class NetworkCut:
    """Packets to and from ``port`` on this host dropped while it is on (needs root and
    ``iptables``)."""

    def __init__(self, port: int) -> None:
        self.rules = [["OUTPUT", "-p", "tcp", flag, str(port), "-j", "DROP"]
                      for flag in ("--dport", "--sport")]  # fmt: skip
        self.on = False

    def start(self) -> None:
        for rule in self.rules:
            subprocess.run(["iptables", "-I", *rule], check=True, timeout=30)
        self.on = True

    def heal(self) -> None:
        if self.on:
            for rule in self.rules:
                subprocess.run(["iptables", "-D", *rule], check=False, timeout=30)
        self.on = False


@pytest.fixture
def network_cut(throwaway_pg):
    usable = shutil.which("iptables") and os.geteuid() == 0
    if not usable or subprocess.run(["iptables", "-L", "-n"], capture_output=True).returncode:
        pytest.skip("cannot cut the network here: iptables (as root, with NET_ADMIN) is needed")
    cut = NetworkCut(throwaway_pg.port)
    try:
        yield cut
    finally:
        cut.heal()


def _warned(err_path, since: float) -> bool:
    return any("is away" in line for line in err_path.read_text().splitlines()[since:])


def test_a_network_cut_is_noticed_and_waited_out(throwaway_pg, network_cut, ray_address,
                                                 tmp_path, fault_figures):  # fmt: skip
    log = tmp_path / "executions.jsonl"
    spec = recorded_study(tmp_path / "study.yaml", log, sleep=0.3, name="cut",
                          max_points=POINTS, parallel=2, seed=7)  # fmt: skip
    argv = [sys.executable, "-m", "idds", "--db", throwaway_pg.url(), "--ray-address",
            ray_address, "hpo", "launch", str(spec), "--no-progress"]  # fmt: skip
    env = {**os.environ, "IDDS_LEASE_SECONDS": "90", "IDDS_WORK_DIR": str(tmp_path / "work")}
    err_path = tmp_path / "head.err"
    with err_path.open("w") as err:
        head = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
    engine = sa.create_engine(throwaway_pg.url())
    try:
        wait_for_points(engine, head, POINTS // 3)
        engine.dispose()
        lines_before = len(err_path.read_text().splitlines())
        network_cut.start()
        cut_at = time.monotonic()
        ran_before = set(executions(log, point))
        while not _warned(err_path, lines_before) and time.monotonic() - cut_at < CUT_S:
            assert head.poll() is None, f"the head died with the network: {err_path.read_text()}"
            time.sleep(0.5)
        noticed_s = time.monotonic() - cut_at
        assert noticed_s < NOTICED_WITHIN_S, f"no word of the cut in {noticed_s:.0f} s"
        time.sleep(max(0.0, CUT_S - noticed_s))
        assert head.poll() is None, "the head died with the network"
        network_cut.heal()
        head.wait(timeout=240)
    finally:
        network_cut.heal()
        if head.poll() is None:
            head.kill()
    err_text = err_path.read_text()
    assert head.returncode == 0, err_text

    counts, ok_attempts = study_counts(engine)
    engine.dispose()
    runs = executions(log, point)
    duplicates = sum(n - 1 for n in runs.values())
    fault_figures(cut_s=CUT_S, noticed_s=round(noticed_s, 1), duplicates=duplicates,
                  lost=POINTS - counts[tq.TaskState.SUCCEEDED])  # fmt: skip
    assert counts[tq.TaskState.SUCCEEDED] == POINTS and sum(counts.values()) == POINTS
    assert ok_attempts == POINTS  # each result recorded exactly once
    for x in ran_before:
        assert runs[x] == 1, f"point x={x} ran before the cut yet ran again"
