"""``idds hpo ...``: launch, list, show, resume and cancel studies."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from hpo.spec import load_spec_file
from hpo.study import KIND, Study, Trial, load_study
from idds.client import records_for
from idds.config import Settings, parse_spec_text
from idds.errors import IddsError, NotFound, SpecError
from idds.lifecycle import Lifecycle, add_commands
from idds.output import View, emit, view_options
from idds.records import OwnerRecord, TaskRecord
from idds.tasks import TaskState

if TYPE_CHECKING:
    from idds.records.views import Shown


@click.group("hpo")
def hpo() -> None:
    """Hyperparameter optimisation studies."""


#: The words of the command that resumes a study (what `idds serve` runs).
RESUME = ["hpo", "resume"]


def _build(settings: Settings, spec_file: str, options: dict[str, Any]) -> Study:
    spec, base = load_spec_file(spec_file)
    if options.get("name"):
        spec = type(spec).from_mapping({**spec.to_json(), "name": options["name"]}, source="--name")
    return Study(spec, settings=settings, base_dir=base)


def _run(study: Study, progress: bool) -> None:
    study.optimize(progress=progress)
    state = study.state
    if state == "cancelled":
        click.echo(f"study {study.name!r} was cancelled")
    _print_best(study)
    for part in study._segments_here() if study.segments else [study]:
        _fail_if_all_failed(part)


def _fail_if_all_failed(study: Study) -> None:
    """A study none of whose evaluations succeeded is an error (exit 1), with its commonest."""
    trials = study.trials
    if not trials or any(t.state != TaskState.FAILED for t in trials):
        return
    lines = [_last_line(t.error) for t in trials]
    line, n = Counter(lines).most_common(1)[0]
    raise IddsError(
        f"study {study.name!r}: every evaluation failed ({len(trials)}); the commonest error "
        f"({n} of them): {line}  (see `idds hpo show {study.name}`)"
    )


def _last_line(error: str | None) -> str:
    lines = [line for line in (error or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no error recorded)"


def _print_best(study: Study) -> None:
    if study.segments:
        for segment in study._segments_here():
            click.echo(f"[{segment.name}]")
            _print_best(segment)
        return
    if len(study.spec.directions) > 1:
        front = study.best_trials
        click.echo(f"Pareto front ({len(front)} trial(s), {', '.join(study.spec.directions)}):")
        for t in front:
            values = ", ".join(f"{v:.6g}" for v in t.values or [])
            click.echo(f"  trial {t.number}: [{values}] {json.dumps(t.params)}")
        return
    best = study.best
    if best is None:
        click.echo("no succeeded feasible evaluation yet")
        return
    click.echo(f"best value: {best.value:.6g} (trial {best.number})")
    click.echo(f"best point: {json.dumps(best.params)}")


def _table(settings: Settings) -> tuple[list[str], list[list[object]]]:
    records = records_for(settings)
    studies = records.owners(KIND)
    bests = records.best(studies)
    shown = records.shown(studies)
    headers = ["name", "user", "state", "proposer", "done", "running", "failed", "best"]
    return headers, [_summary(s, bests.get(s.id), shown[s.id]) for s in studies]


def _summary(study: OwnerRecord, best: TaskRecord | None, shown: Shown) -> list[object]:
    return [
        study.name,
        study.user,
        shown.state,
        study.spec.get("proposer"),
        f"{study.done}/{study.spec.get('max_points')}",
        shown.in_flight,
        study.failed,
        "" if best is None else f"{best.result['values'][0]:.6g}",
    ]


@hpo.command()
@click.argument("name")
@click.option("--errors/--no-errors", default=True, help="Print failed trials' tracebacks.")
@view_options
@click.pass_obj
def show(settings: Settings, name: str, errors: bool, view: View) -> None:
    """Trials of study NAME and the best: state, attempt, site, the objective's run time on
    its worker (`run`), the time from its start until the head recorded it (`recorded`),
    value.

    With --format json or csv, only the trials (of every segment) are printed.
    """
    study = load_study(name, settings=settings)
    if study.segments:
        if view.table:
            click.echo(f"study {name}: {study.state}, segmented: {len(study.segments)} segments")
        for segment in study._segments_here():
            if view.table:
                click.echo("")
            _show(segment, errors, view)
        return
    _show(study, errors, view)


def _show(study: Study, errors: bool, view: View) -> None:
    name = study.name
    spec = study.spec
    trials = study.trials
    records = study.records
    shown = records.shown([records.owner_by_id(study.owner_id)])[study.owner_id]
    headers = ["trial", "state", "attempt", "site", "node", "run", "recorded", "value", "params"]
    if len(spec.directions) > 1:
        headers[7] = "values"
    rows = [_trial_row(t, shown) for t in trials]
    if spec.proposer == "auto":  # which proposer made each point
        headers.insert(2, "by")
        for row, t in zip(rows, trials, strict=True):
            row.insert(2, t.proposer or "")
    if not view.table:
        emit(headers, rows, view)
        return
    click.echo(
        f"study {name}: {shown.state}, {'/'.join(spec.directions)} {spec.objective or spec.argv}, "
        f"proposer {spec.proposer}, {len(trials)}/{spec.max_points} points"
    )
    emit(headers, rows, view)
    _print_changes(study)
    if errors:
        for t in trials:
            if t.state == TaskState.FAILED and t.error:
                click.echo(f"\ntrial {t.number} failed after {t.attempt} attempt(s):")
                click.echo(t.error.rstrip())
    click.echo("")
    _print_best(study)


def _print_changes(study: Study) -> None:
    """Where ``proposer: auto`` chose a proposer, and why."""
    notes = [(t.number, t.proposer_note) for t in study.trials if t.proposer_note]
    if notes:
        click.echo("\nproposer chosen (auto):")
    for number, note in notes:
        click.echo(f"  from trial {number}: {note}")


def _trial_row(t: Trial, shown: Shown) -> list[object]:
    value = "" if t.values is None else ", ".join(f"{v:.6g}" for v in t.values)
    if t.values is not None and not t.feasible:
        value += " (infeasible)"
    if t.pruned:
        value += " (pruned)"
    params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    state = shown.task_state(t.state)
    run, recorded = _seconds(t.run_s), _seconds(t.duration_s)
    return [t.number, state, t.attempt, t.site, t.node, run, recorded, value, params]


def _seconds(s: float | None) -> str:
    return "" if s is None else f"{s:.3g}s"


def _short(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@hpo.command()
@click.argument("name")
@click.argument("trial", type=int)
@click.option("--attempt", type=int, help="Which attempt (the last one by default).")
@click.pass_obj
def logs(settings: Settings, name: str, trial: int, attempt: int | None) -> None:
    """Print the stdout and stderr of TRIAL of study NAME."""
    study = load_study(name, settings=settings)
    if study.remote:
        attempt, *texts = study.served_logs(trial, attempt)
        for label, text in zip(("stdout", "stderr"), texts, strict=True):
            click.echo(f"--- {label} of trial {trial}, attempt {attempt} (on the server) ---")
            click.echo("(none)" if text is None else text, nl=text is None)
        return
    out, err, attempt = study.log_paths(trial, attempt)
    if not out.exists() and not err.exists():
        raise NotFound(f"no logs for trial {trial}, attempt {attempt} (looked in {out.parent})")
    for label, path in (("stdout", out), ("stderr", err)):
        click.echo(f"--- {label} of trial {trial}, attempt {attempt} ({path}) ---")
        click.echo(path.read_text(errors="replace") if path.exists() else "(none)", nl=False)


@hpo.command()
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True)
@click.pass_obj
def enqueue(settings: Settings, name: str, assignments: tuple[str, ...]) -> None:
    """Add the point KEY=VALUE ... to study NAME, to be evaluated next."""
    point = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"{item!r} is not KEY=VALUE")
        point[key] = parse_spec_text(value, key) if value else ""
    study = load_study(name, settings=settings)
    if study.state != "active":
        raise SpecError(f"study {name!r} is {study.state}: an enqueued point would never run")
    point = study.enqueue(point)
    click.echo(f"enqueued {json.dumps(point)} in study {name!r}")


@hpo.command()
@click.argument("name")
@click.option("--to", "url", required=True, help="Optuna storage: RDB URL or journal:PATH.")
@click.option("--as", "as_name", help="Study name in the storage (NAME by default).")
@click.pass_obj
def export(settings: Settings, name: str, url: str, as_name: str | None) -> None:
    """Write study NAME into an Optuna storage (for optuna-dashboard, optuna.visualization)."""
    from hpo.interop import export_study

    n = export_study(load_study(name, settings=settings), url, name=as_name)
    click.echo(f"exported {n} finished trial(s) of {name!r} to {url}")


@hpo.command("import")
@click.argument("url")
@click.option("--study", "study_name", required=True, help="The Optuna study to read.")
@click.option("--name", help="Name of the new idds study (the Optuna study's by default).")
@click.option("--objective", help="module:function to evaluate further points with.")
@click.option("--command", "command", help="Or a command, as in a spec file.")
@click.option("--max-points", type=int, help="Points in all, to go on with `resume`.")
@click.pass_obj
def import_(
    settings: Settings, url: str, study_name: str, name: str | None, objective: str | None,
    command: str | None, max_points: int | None,
) -> None:  # fmt: skip
    """Create an idds study from an Optuna study in the storage at URL."""
    from hpo.interop import import_study

    spec: dict[str, object] = {"name": name or study_name}
    spec.update({k: v for k, v in (("objective", objective), ("command", command),
                                   ("max_points", max_points)) if v is not None})  # fmt: skip
    study = import_study(url, study_name, spec, settings=settings)
    click.echo(f"imported {len(study.trials)} trial(s) into study {study.name!r} ({study.state})")


add_commands(
    hpo,
    Lifecycle(
        noun="study",
        plural="studies",
        build=_build,
        load=lambda name, settings: load_study(name, settings=settings),
        run=_run,
        print_done=_print_best,
        table=_table,
    ),
)
