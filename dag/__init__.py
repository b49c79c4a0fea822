"""Workflows on the scheduling core: DAGs, templates, fan-out, conditions and loops.

Define one in YAML (``idds dag launch wf.yaml``) or in Python::

    from dag import Workflow
    wf = Workflow({"name": "demo", "nodes": [
        {"name": "a", "callable": "mymodule:prepare"},
        {"name": "b", "callable": "mymodule:train", "after": ["a"]},
    ]})
    wf.run()
"""

from dag.engine import NodeState
from dag.expr import Expression, ExpressionError
from dag.spec import WorkflowSpec, load_spec_file
from dag.workflow import NodeInfo, Workflow, list_workflows, load_workflow

__all__ = [
    "Expression",
    "ExpressionError",
    "NodeInfo",
    "NodeState",
    "Workflow",
    "WorkflowSpec",
    "list_workflows",
    "load_spec_file",
    "load_workflow",
]
