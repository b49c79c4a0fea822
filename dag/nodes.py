"""What some workflow nodes run on a Ray worker: a node that declares output files, and an
HPO study or a toy-MC scan as a node, which the workflow's head creates and runs (through
hpo's and toys' public APIs) while its worker waits (:mod:`dag.parts`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from idds.config import path_inside
from idds.errors import Exists
from idds.payloads import current, load_callable

if TYPE_CHECKING:
    from idds.config import Settings
    from idds.handle import OwnerHandle


def with_files(inner: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """Run ``inner`` (a callable or command payload) in this work dir, then check that the
    files it declares exist.

    Returns:
        ``{"value": what it returned, "files": {name: absolute path}}``.

    Raises:
        FileNotFoundError: a declared file was not written (the attempt fails).
    """
    if "command" in inner:
        from idds.commands import run_command

        outcome = run_command(inner, int(current.get("attempt", 1)))
        if not outcome.get("ok"):
            raise RuntimeError(outcome.get("error", "the command failed"))
        value = outcome.get("value")
    else:
        fn = load_callable(inner["callable"], inner.get("pythonpath", ()))
        value = fn(**inner.get("kwargs", {}))
    base = Path(inner.get("workdir") or ".").resolve()
    paths = {name: path_inside(base, name) for name in files}
    missing = [name for name, p in paths.items() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"declared output file(s) not written: {', '.join(missing)}")
    return {"value": value, "files": {name: str(p) for name, p in paths.items()}}


def await_part(kind: str, name: str, spec: str | dict[str, Any], spec_dir: str) -> Any:
    """A study or toy-scan node, on its worker: ask the workflow's head to run the study (or
    scan) ``name`` as a part of the workflow, and wait until it ended; its result is the
    node's. The worker holds no credential: the head creates and runs the part.

    Raises:
        RuntimeError: the part failed or was cancelled.
    """
    import time

    import ray

    from idds.payloads import channel

    question = {"part": kind, "name": name, "spec": spec, "spec_dir": spec_dir}
    while True:
        answer = ray.get(channel().ask.remote(current["token"], question))
        if "error" in answer:
            raise RuntimeError(answer["error"])
        state = answer["value"]["state"]
        if state == "finished":
            return answer["value"]["result"]
        if state != "active":
            why = answer["value"].get("why") or ""
            raise RuntimeError(f"{name}: {state}{': ' + why if why else ''}")
        time.sleep(1.0)


def open_study(
    spec: str | dict[str, Any], name: str, settings: Settings, spec_dir: str,
    user: str | None = None, parent_id: int | None = None,
) -> Any:  # fmt: skip
    """The HPO study of a workflow node, created as part of the workflow where it is not
    recorded yet (a head's side: it holds the database).

    Args:
        spec: a study spec file (relative to the workflow's directory) or a spec mapping;
            its name becomes ``name`` (``WORKFLOW.NODE``) so that each use is its own study.
        user: the workflow's owner, recorded as the study's.
        parent_id: the workflow's owner id: the study is part of it.

    Raises:
        Exists: a study of that name is recorded that is not part of this workflow.
    """
    import hpo

    if isinstance(spec, str):
        loaded, base = hpo.load_spec_file(Path(spec_dir) / spec)
        data = {**loaded.to_json(), "name": name}
    else:
        data, base = {**spec, "name": name}, Path(spec_dir)
    try:
        found = hpo.load_study(name, settings=settings)
    except LookupError:
        found = hpo.Study(hpo.StudySpec.from_mapping(data), settings=settings, base_dir=base)
        found.create(user=user, parent_id=parent_id)
    else:
        _check_part(found, parent_id)
    return found


def study_result(found: Any) -> dict[str, Any]:
    """A study node's result: its best point."""
    best = found.best
    return {
        "study": found.name,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else best.params,
        "n_trials": len(found.trials),
    }


def open_scan(
    spec: str | dict[str, Any], name: str, settings: Settings, spec_dir: str,
    user: str | None = None, parent_id: int | None = None,
) -> Any:  # fmt: skip
    """The toy-MC limit scan of a workflow node, created as part of the workflow where it is
    not recorded yet (a head's side).

    Args:
        spec: a scan spec file (relative to the workflow's directory) or a spec mapping
            (its ``workspace`` path relative to that directory); named ``name``.
        user: the workflow's owner, recorded as the scan's.
        parent_id: the workflow's owner id: the scan is part of it.

    Raises:
        Exists: a scan of that name is recorded that is not part of this workflow.
    """
    from toys import ToyScan, ToyScanSpec, load_scan, load_scan_file

    base = Path(spec_dir)
    if isinstance(spec, str):
        data = {**load_scan_file(base / spec).to_json(), "name": name}
        base = (base / spec).resolve().parent
    else:
        data = {**spec, "name": name}
    try:
        scan = load_scan(name, settings=settings)
    except LookupError:
        scan = ToyScan(ToyScanSpec.from_mapping(data, base_dir=base), settings=settings)
        scan.create(user=user, parent_id=parent_id)
    else:
        _check_part(scan, parent_id)
    return scan


def scan_result(scan: Any) -> dict[str, Any]:
    """A toy-scan node's result: ``{"scan": name, "limits": {band: {"value", "error",
    "status"}}, "toys": N, "converged": bool}``."""
    result = scan.result()
    limits = {
        band: {"value": lim.value, "error": lim.error, "status": lim.status}
        for band, lim in result.limits.items()
    }
    return {"scan": scan.name, "limits": limits, "toys": result.toys, "converged": result.converged}


def _check_part(found: OwnerHandle, parent_id: int | None) -> None:
    """Check that the owner a node found under its name is part of the node's workflow (and
    not, say, another user's study that was recorded under that name first).

    Raises:
        Exists: it is not.
    """
    record = found.record()
    if parent_id is None or record.parent_id == parent_id:
        return  # a node handed in before workflows recorded their parts does not say
    workflow = found.records.owner_by_id(parent_id).name
    raise Exists(
        f"a {found.noun} named {found.name!r} exists already and is not part of workflow "
        f"{workflow!r}: rename the workflow or the node"
    )
