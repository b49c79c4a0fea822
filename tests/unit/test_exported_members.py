"""The public API of each package changes only on purpose."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "idds": {
        "TRANSITIONS", "Broker", "DatabaseError", "Dispatcher", "IddsError",
        "IllegalTransition", "LeaseLost", "LocalBroker", "NotFound", "Outcome", "Placement",
        "Settings", "SpecError", "TaskOwner", "TaskSpec", "TaskState", "connect",
    },
    "idds.dispatch": {
        "INTERRUPT_GRACE_S", "Broker", "CommitBuffer", "Dispatcher", "InFlight", "LocalBroker",
        "Placement", "TaskOwner", "Unrecorded", "connection_lost", "default_broker",
    },
    "idds.tasks": {
        "FINAL", "IN_FLIGHT", "NOW", "TRANSITIONS", "Attempt", "AttemptKind", "Claim", "DbTime",
        "Outcome", "Report", "Task", "TaskSpec", "TaskState", "add_reports", "attempt_kind",
        "attempts", "cancel_owner_tasks", "claim", "counts", "finish", "mark_running",
        "record_finished", "reports", "reports_of", "requeue_in_flight", "start_attempts",
        "submit", "submit_claimed", "tasks", "transition", "unclaim",
    },
    "hpo": {
        "PROPOSERS", "Proposer", "Pruned", "Study", "StudySpec", "Trial", "checkpoint_dir",
        "load_spec_file", "load_study", "params", "report", "segment", "should_prune",
    },
    "toys": {
        "BANDS", "Limit", "Point", "ScanResult", "ToyScan", "ToyScanError", "ToyScanSpec",
        "load_scan", "load_scan_file",
    },
    "dag": {
        "Expression", "ExpressionError", "NodeInfo", "NodeState", "Workflow", "WorkflowSpec",
        "list_workflows", "load_spec_file", "load_workflow",
    },
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_all_is_what_we_mean_to_export(package):
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED[package]
    for name in module.__all__:
        assert hasattr(module, name), name


def test_core_imports_no_capability_package():
    import subprocess
    import sys

    code = "import sys, idds, idds.cli, idds.dispatch; print(sorted(m for m in sys.modules if m.split('.')[0] in ('hpo', 'toys', 'dag', 'carousel', 'dashboard', 'gpu_sites')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
