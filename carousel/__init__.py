"""The data carousel: stage files from tape, process each as it arrives, release it as soon
as it is processed, under a disk-buffer budget.

- :mod:`carousel.spec`: the campaign (files, tape library, processing, policies, buffer).
- :mod:`carousel.dm`: the data-management interface; :mod:`carousel.tape` (the emulator)
  and :mod:`carousel.rucio` (Rucio) implement it.
- :mod:`carousel.policies`: ``file-level``, ``dataset-level``, ``sliding-window``.
- :mod:`carousel.orchestrator`: the orchestrator, the same in both modes.
- :mod:`carousel.simulate` (simulated clock) and :mod:`carousel.live` (the core, on Ray);
  :mod:`carousel.journal`: a live carousel's staging log, from which it resumes.
- :mod:`carousel.planner`: makespan and disk against buffer size or processing slots.
- :mod:`carousel.store`: the read API (carousels as recorded, disk curve, file timeline).
- :mod:`carousel.tapeplayer`: the tape emulator playing FTS and Rucio's conveyor.
"""

from carousel.catalog import Catalog, build_catalog
from carousel.clock import SimClock, WallClock
from carousel.dm import DataManagement, FileState, StagingListener
from carousel.live import CarouselRun, resume_live, run_live
from carousel.orchestrator import Orchestrator, Processing, SimProcessing
from carousel.planner import PlanRow, plan, recommend
from carousel.policies import DatasetLevel, FileLevel, Policy, SlidingWindow, make_policy
from carousel.rucio import RucioDM, RucioSite
from carousel.simulate import CampaignResult, Simulation, simulate
from carousel.sizes import format_size, parse_size
from carousel.spec import CampaignSpec, load_campaign_file
from carousel.store import CarouselInfo, list_carousels, load_carousel
from carousel.tape import TapeEmulator
from carousel.tapeplayer import TapePlayer

__all__ = [
    "CampaignResult", "CampaignSpec", "CarouselInfo", "CarouselRun", "Catalog",
    "DataManagement", "DatasetLevel", "FileLevel", "FileState", "Orchestrator", "PlanRow",
    "Policy", "Processing", "RucioDM", "RucioSite", "SimClock", "SimProcessing", "Simulation",
    "SlidingWindow", "StagingListener", "TapeEmulator", "TapePlayer", "WallClock",
    "build_catalog", "format_size", "list_carousels", "load_campaign_file", "load_carousel",
    "make_policy", "parse_size", "plan", "recommend", "resume_live", "run_live", "simulate",
]  # fmt: skip
