"""Hyperparameter optimisation studies on the scheduling core.

Define a study in YAML (``idds hpo launch study.yaml``) or in Python::

    import hpo
    study = hpo.Study(name="demo", objective="mymodule:objective",
                      space={"x": {"type": "float", "low": -5, "high": 5}}, max_points=50)
    study.optimize()
    print(study.best)
"""

from hpo.proposers import PROPOSERS, Proposer
from hpo.sdk import Pruned, checkpoint_dir, params, report, segment, should_prune
from hpo.spec import StudySpec, load_spec_file
from hpo.study import Study, Trial, load_study

__all__ = [
    "PROPOSERS",
    "Proposer",
    "Pruned",
    "Study",
    "StudySpec",
    "Trial",
    "checkpoint_dir",
    "load_spec_file",
    "load_study",
    "params",
    "report",
    "segment",
    "should_prune",
]
