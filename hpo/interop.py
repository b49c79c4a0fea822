"""Optuna interoperability: a study exported to (and imported from) an Optuna storage, so
that optuna-dashboard and ``optuna.visualization`` show it.

A storage is an RDB URL (``sqlite:///optuna.db``, ``postgresql://...``) or a journal file
(``journal:PATH``, or a path ending in ``.log`` / ``.jsonl``). The round trip keeps params,
values, states (pruned and failed included), intermediate values and user attributes; idds'
own record of each trial (attempt, site, node, duration) goes along as ``idds:*`` user
attributes.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import json_to_distribution

from hpo.proposers import distributions
from hpo.spec import StudySpec
from hpo.study import Study, Trial
from idds.db import check_url
from idds.errors import SpecError
from idds.records import Imported
from idds.tasks import FINAL, TaskSpec, TaskState

_IDDS_ATTRS = ("attempt", "site", "node", "duration_s")


def storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage a URL or journal path names."""
    if url.startswith("journal:") or url.endswith((".log", ".jsonl")):
        path = url.removeprefix("journal:")
        backend = optuna.storages.journal.JournalFileBackend(path)  # type: ignore[attr-defined]
        return optuna.storages.JournalStorage(backend)
    try:
        check_url(url)
        return optuna.storages.RDBStorage(url)
    except (SpecError, ValueError, ImportError) as exc:
        raise SpecError(f"not an Optuna storage: {url!r} ({str(exc).splitlines()[0]})") from None


def export_study(study: Study, url: str, *, name: str | None = None) -> int:
    """Write ``study``'s finished trials into the Optuna storage at ``url``.

    Returns:
        How many trials were written (trials not finished are left out).

    Raises:
        SpecError: the storage already holds a study of that name.
    """
    name = name or study.name
    target = storage(url)
    try:
        out = optuna.create_study(
            storage=target,
            study_name=name,
            directions=list(study.spec.directions),  # type: ignore[arg-type]
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise SpecError(f"the Optuna storage already has a study named {name!r}") from None
    dists = distributions(study.spec.space)
    finished = [t for t in study.trials if t.state in FINAL]
    for t in finished:
        out.add_trial(_frozen(t, dists))
    return len(finished)


def _frozen(t: Trial, dists: dict[str, Any]) -> optuna.trial.FrozenTrial:
    attrs = {f"idds:{k}": getattr(t, k) for k in _IDDS_ATTRS if getattr(t, k) is not None}
    attrs.update(t.user_attrs)
    if t.error:
        attrs["idds:error"] = t.error[-2000:]
    state = optuna.trial.TrialState.FAIL
    values = None
    if t.pruned:
        state = optuna.trial.TrialState.PRUNED
    elif t.state == TaskState.SUCCEEDED:
        state, values = optuna.trial.TrialState.COMPLETE, t.values
    constraints = {f"c{i}": c for i, c in enumerate(t.constraints or ())} or None
    asked = {k: json_to_distribution(v) for k, v in t.distributions.items()}
    return optuna.trial.create_trial(
        params=t.params, distributions={k: dists.get(k) or asked[k] for k in t.params},
        values=values,
        state=state, user_attrs=attrs, intermediate_values=t.intermediate_values or None,
        constraints=constraints,
    )  # fmt: skip


def import_study(url: str, study_name: str, spec: dict[str, Any], *, settings: Any = None) -> Study:
    """Create an idds study from the Optuna study ``study_name`` in the storage at ``url``.

    ``spec`` gives what Optuna does not store: at least ``name`` and ``objective`` (or
    ``command``); the space is read off the trials' distributions, the directions off the
    study, and ``max_points`` defaults to the number of trials (raise it to go on).

    Raises:
        SpecError: no such Optuna study, or the spec does not validate.
    """
    try:
        source = optuna.load_study(study_name=study_name, storage=storage(url))
    except KeyError:
        raise SpecError(f"no Optuna study named {study_name!r} in {url}") from None
    trials = [t for t in source.get_trials(deepcopy=False) if t.state.is_finished()]
    full = {
        "space": _space(trials),
        "direction": [d.name.lower() for d in source.directions],
        "max_points": max(len(trials), 1),
        **spec,
    }
    if len(full["direction"]) == 1:
        full["direction"] = full["direction"][0]
    study = Study(StudySpec.from_mapping(full, source="import"), settings=settings)
    owner_id = study.create()
    imported = [_imported(number, t, study) for number, t in enumerate(trials)]
    study.records.record_imported(owner_id, imported)
    if len(trials) >= study.spec.max_points:
        study.finish()
    return study


def _space(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    space: dict[str, Any] = {}
    for t in trials:
        for name, d in t.distributions.items():
            space.setdefault(name, _param(d))
    if not space:
        raise SpecError("the Optuna study has no finished trial to read a space from")
    return space


def _param(d: optuna.distributions.BaseDistribution) -> dict[str, Any]:
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return {"type": "categorical", "choices": list(d.choices)}
    kind = "int" if isinstance(d, optuna.distributions.IntDistribution) else "float"
    out: dict[str, Any] = {"type": kind, "low": d.low, "high": d.high, "log": d.log}  # type: ignore[attr-defined]
    if d.step is not None and not (kind == "int" and d.step == 1):  # type: ignore[attr-defined]
        out["step"] = d.step  # type: ignore[attr-defined]
    return out


def _imported(number: int, t: optuna.trial.FrozenTrial, study: Study) -> Imported:
    from hpo.run import payload_for

    user = {k: v for k, v in t.user_attrs.items() if not k.startswith("idds:")}
    result: dict[str, Any] | None = None
    state, error = TaskState.FAILED, t.user_attrs.get("idds:error", f"{t.state.name} in Optuna")
    if t.state == optuna.trial.TrialState.COMPLETE:
        state, error = TaskState.SUCCEEDED, None
        result = {"values": list(t.values)}
    elif t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values:
        last = max(t.intermediate_values)
        state, error = TaskState.SUCCEEDED, None
        result = {"values": [t.intermediate_values[last]], "pruned": True, "step": last}
    if result is not None:
        constraints = [v for _, v in sorted(t.constraints.items())] if t.constraints else None
        if constraints:
            result["constraints"] = constraints
        if user:
            result["user_attrs"] = user
    payload = payload_for(study, number, t.params)
    return Imported(
        spec=TaskSpec(number=number, kind="hpo.trial", payload=payload), state=state,
        result=result, error=error, site=t.user_attrs.get("idds:site", "optuna"),
        reports=dict(t.intermediate_values),
    )  # fmt: skip
