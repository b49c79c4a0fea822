"""GPU sites: a study of 1-second GPU evaluations across a local pilot and Slurm pilots,
beside the same study on local Ray alone, in one run.

The sites run starts from no pilots: the broker's pilot manager starts the local site's pilot
(its ``min_pilots``) when the first task is placed and Slurm pilots as work queues up, so
``time_to_first_eval_s`` includes pilot start-up. Local Ray alone has as many GPU slots, up
before the clock starts. Each pilot declares logical GPUs (this machine may have none).

Metrics: ``time_to_first_eval_s`` (launch to the first evaluation's end), ``utilisation``
(busy slot-seconds over slots x (last end - first start)), ``evals_per_s`` (evaluations over
launch-to-end wall time). Slurm is used where ``sinfo`` answers (``SLURM_CONF``); otherwise
the sites run has the local site only, and its config says so.

    python -m bench sites [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench._report import RESULTS, markdown_table, row, save

#: Slots of each kind of site (the local pilot runs 2 at once; each Slurm pilot 1).
LOCAL_SLOTS, SLURM_PILOTS = 2, 2


def evaluate(params: dict[str, Any]) -> float:
    """An evaluation: holds its slot (and GPU) for ``sleep`` seconds."""
    time.sleep(params["sleep"])
    return (params["x"] - 0.3) ** 2


def slurm_answers() -> bool:
    try:
        done = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def sites_spec(with_slurm: bool) -> dict[str, Any]:
    common = {"gpus_per_pilot": 1, "gpu_type": "T4", "idle_s": 600, "startup_s": 10,
              "settings": {"object_store_mb": 100}}  # fmt: skip
    sites = [{"name": "workstation", "kind": "local", "min_pilots": 1, "max_pilots": 1,
              **common, "slots": LOCAL_SLOTS, "gpus_per_pilot": LOCAL_SLOTS}]  # fmt: skip
    if with_slurm:
        sites.append({"name": "hpc", "kind": "slurm", "slots": 1, "min_pilots": 0,
                      "max_pilots": SLURM_PILOTS, **common})  # fmt: skip
    return {"sites": sites, "broker": {"refresh_s": 0.2, "scale_period_s": 1.0}}


def run_study(
    db_url: str, name: str, n: int, eval_s: float, slots: int, gpus: float,
    launched: float | None = None, sites: Path | None = None,
) -> dict:  # fmt: skip
    """Run one study; its figures from the attempts the core recorded.

    Args:
        launched: when the run was launched (now by default).
        sites: the sites file to place the evaluations on (none: the local Ray cluster).
    """
    import hpo
    from idds.config import Settings
    from idds.db import connect
    from idds.records import Records

    settings = Settings(
        db_url=db_url, work_dir=Path(tempfile.mkdtemp(prefix="idds-bench-")), sites=sites
    )
    study = hpo.Study(
        settings=settings, name=name, objective="bench.sites:evaluate",
        space={"x": {"type": "float", "low": -1.0, "high": 1.0},
               "sleep": {"type": "categorical", "choices": [eval_s]}},
        max_points=n, parallel=slots, proposer="optuna:random", seed=0,
        resources={"gpus": gpus}, pythonpath=[str(Path(__file__).parents[1])],
    )  # fmt: skip
    launched = launched or time.time()
    study.optimize(progress=False)
    ended = time.time()
    engine = connect(db_url)
    rows = [a for a in Records(engine).attempts() if a.state == "succeeded"]
    engine.dispose()
    assert len(rows) == n, f"{name}: {len(rows)} of {n} evaluations succeeded"
    first, last = min(r.started for r in rows), max(r.finished for r in rows)
    busy = sum(r.finished - r.started for r in rows)
    sites: dict[str, int] = {}
    for r in rows:
        sites[r.site] = sites.get(r.site, 0) + 1
    return {
        "time_to_first_eval_s": min(r.finished for r in rows) - launched,
        "utilisation": busy / (slots * (last - first)),
        "evals_per_s": n / (ended - launched),
        "sites": sites,
    }


def run_sites(db_url: str, n: int, eval_s: float, with_slurm: bool, work: Path) -> dict:
    from gpu_sites import make_site, parse_sites

    path = work / "sites.yaml"
    path.write_text(yaml.safe_dump(sites_spec(with_slurm)))
    slots = LOCAL_SLOTS + (SLURM_PILOTS if with_slurm else 0)
    spec = parse_sites(sites_spec(with_slurm))
    try:
        launched = time.time()
        # The study checks that the cluster has a GPU before it starts: the local site's
        # pilot (its min_pilots, which the broker would start) is started here, on the clock.
        head = _head()
        make_site(spec.site("workstation"), head_address=head, work_dir=work).submit(1)
        _wait_for_gpus(1)
        return run_study(db_url, "sites", n, eval_s, slots, 1, launched=launched, sites=path)
    finally:
        for site in spec.sites:  # no pilot outlives the run
            make_site(site, head_address=None, work_dir=work).drain()


def _head() -> str:
    import ray

    return str(ray.get_runtime_context().gcs_address)


def _wait_for_gpus(count: float, timeout: float = 120.0) -> None:
    import ray

    deadline = time.monotonic() + timeout
    while ray.cluster_resources().get("GPU", 0.0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no pilot joined with a GPU in {timeout:g} s")
        time.sleep(0.2)


def _start_ray(slots: int) -> None:
    """A local Ray with as many GPU slots as the sites run has (unless one is joined)."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=slots, num_gpus=slots, _node_ip_address="127.0.0.1",
                 include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sites")
    parser.add_argument("--quick", action="store_true", help="20 evaluations of 0.2 s")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n, eval_s = (20, 0.2) if args.quick else (200, 1.0)
    with_slurm = slurm_answers()
    slots = LOCAL_SLOTS + (SLURM_PILOTS if with_slurm else 0)
    _start_ray(slots)
    import ray

    work = Path(tempfile.mkdtemp(prefix="idds-bench-sites-"))
    head_gpus = ray.cluster_resources().get("GPU", 0.0)
    base_slots = int(min(slots, head_gpus)) if head_gpus >= 1 else slots
    base = run_study(f"sqlite:///{work / 'local.db'}", "local", n, eval_s, base_slots,
                     1 if head_gpus >= 1 else 0)  # fmt: skip
    ours = run_sites(f"sqlite:///{work / 'sites.db'}", n, eval_s, with_slurm, work)
    where = f"local pilot ({LOCAL_SLOTS} slots)" + (
        f" + {SLURM_PILOTS} Slurm pilots (1 slot each)" if with_slurm else ", no Slurm here"
    )
    configs = [
        ("idds", f"sites: {where}, {n} x {eval_s:g} s, gpus=1", ours, slots),
        ("ray-local", f"local Ray alone, {base_slots} slots, {n} x {eval_s:g} s", base,
         base_slots),
    ]  # fmt: skip
    rows, table = [], []
    for system, config, figures, _ in configs:
        for metric, unit in (("time_to_first_eval_s", "s"), ("utilisation", "fraction"),
                             ("evals_per_s", "1/s")):  # fmt: skip
            rows.append(row(system, config, metric, round(figures[metric], 4), unit))
    for system, config, figures, _ in configs:
        ratio = figures["evals_per_s"] / base["evals_per_s"]
        placed = ", ".join(f"{k}: {v}" for k, v in sorted(figures["sites"].items()))
        table.append([system, config, f"{figures['time_to_first_eval_s']:.2f}",
                      f"{figures['utilisation']:.2f}", f"{figures['evals_per_s']:.2f}",
                      f"{ratio:.2f}", placed])  # fmt: skip
    headers = ["system", "config", "time_to_first_eval_s", "utilisation", "evals_per_s",
               "throughput ratio to local Ray", "evaluations per site"]  # fmt: skip
    markdown = "# GPU sites\n\n" + markdown_table(headers, table)
    print(markdown)
    save("sites", rows, markdown, args.out)


if __name__ == "__main__":
    main()
