"""Live mode: the orchestrator with processing tasks run by the core on Ray, the tape
emulator on an accelerated wall clock (tens of files, seconds)."""

from __future__ import annotations

import pytest

from carousel.catalog import build_catalog
from carousel.live import KIND, resume_live, run_live
from carousel.spec import CampaignSpec
from idds.db import connect
from idds.errors import Exists, SpecError
from idds.records import Records
from idds.tasks import TaskState

SPEC = {
    "name": "live-small",
    "files": {"count": 20, "datasets": 3},
    "tape": {"cartridges": 4, "cartridges_per_dataset": 2, "drives": 2, "read_failure": 0},
    # Unseeded failures: 0.7**20 (under 0.1 %) that none fails, 20 * 0.3**12 that a file
    # fails every attempt.
    "processing": {"slots": 4, "time_s": 600, "failure": 0.3, "max_attempts": 12},
    "buffer": "14GB",
}


def test_a_live_carousel_processes_every_file_once_through_the_core(settings):
    spec = CampaignSpec.from_mapping(SPEC)
    result = run_live(spec, settings, speedup=6000, backoff_s=0.05)
    assert result.files == 20 and not result.lost and not result.failed
    assert result.peak_bytes <= 14e9  # the buffer budget held in live mode too
    assert result.processing_retries > 0  # the core retried failed attempts ...
    engine = connect(settings.db_url)
    records = Records(engine)
    owner = records.owner(KIND, "live-small")
    rows = records.tasks(owner.id)
    assert owner.state == "finished" and owner.spec["result"]["lost"] == 0
    assert owner.spec["result"]["processing_retries"] == result.processing_retries
    assert [r.number for r in rows] == list(range(20))  # one task per file
    assert all(r.state == TaskState.SUCCEEDED for r in rows)
    assert sum(r.attempt - 1 for r in rows) == result.processing_retries
    with pytest.raises(Exists, match="a carousel named 'live-small' exists; resume it with"):
        run_live(spec, settings, speedup=6000)  # a carousel runs once: its name is taken
    with pytest.raises(SpecError, match="carousel 'live-small' is finished: nothing to resume"):
        resume_live("live-small", settings)
    engine.dispose()


def test_file_level_releases_each_file_when_its_task_succeeds(settings, monkeypatch):
    spec = CampaignSpec.from_mapping({**SPEC, "name": "live-release"})
    spec = spec.replace(**{"processing.failure": 0.0})
    from carousel.live import CarouselRun

    seen: list[CarouselRun] = []
    original = CarouselRun.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    monkeypatch.setattr(CarouselRun, "__init__", keep)
    run_live(spec, settings, speedup=6000)
    orch = seen[0].orchestrator
    assert seen[0].tape.stats.reads == 20  # staged once each
    assert all(orch.released_at[f] == orch.processed_at[f] for f in range(20))
    assert orch.request_order == sorted(set(orch.request_order), key=orch.request_order.index)


def test_a_users_processing_callable_runs_once_per_staged_file(settings, tmp_path):
    (tmp_path / "my_processing.py").write_text(
        "def work(name, size):\n    return {'name': name, 'gb': size / 1e9}\n"
    )
    data = {**SPEC, "name": "live-callable"}
    data["processing"] = {"slots": 4, "failure": 0.0, "callable": "my_processing:work"}
    spec = CampaignSpec.from_mapping(data)
    result = run_live(spec, settings, speedup=6000, base_dir=tmp_path)
    assert result.files == 20 and not result.failed
    engine = connect(settings.db_url)
    records = Records(engine)
    names = sorted(t.result["name"] for t in records.tasks(records.owner(KIND, "live-callable").id))
    engine.dispose()
    assert names == sorted(build_catalog(spec).names)


def test_a_finished_carousel_reads_back_with_its_disk_curve_and_file_timeline(settings, capsys):
    import json

    from carousel.store import list_carousels, load_carousel
    from idds.cli import main

    spec = CampaignSpec.from_mapping({**SPEC, "name": "live-read"})
    spec = spec.replace(**{"processing.failure": 0.0})
    result = run_live(spec, settings, speedup=6000)
    info = load_carousel("live-read", settings)
    assert (info.state, info.policy, info.files) == ("finished", "file-level", 20)
    assert max(info.disk_bytes) == pytest.approx(result.peak_bytes)
    assert len(info.disk_t) == len(info.disk_bytes) >= 2
    assert len(info.timeline) == 20
    for times in info.timeline.values():  # each file requested, staged, processed, released
        assert times["requested"] <= times["staged"] <= times["processed"] == times["released"]
    assert [c.name for c in list_carousels(settings)] == ["live-read"]
    main(["--db", settings.db_url, "carousel", "show", "live-read", "--format", "json"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["result"]["lost"] == 0 and len(shown["timeline"]) == 20
    main(["--db", settings.db_url, "carousel", "list"])
    assert "live-read" in capsys.readouterr().out


def test_a_running_carousel_records_its_timeline_as_it_goes(settings, monkeypatch):
    from carousel.live import CarouselRun

    seen: list[dict] = []
    original = CarouselRun.__init__

    def often(self, *args, **kwargs):
        record = kwargs["snapshot"]
        kwargs.update(snapshot=lambda c: (seen.append(c), record(c)), snapshot_s=0.0)
        original(self, *args, **kwargs)

    monkeypatch.setattr(CarouselRun, "__init__", often)
    spec = CampaignSpec.from_mapping({**SPEC, "name": "live-snap"})
    run_live(spec.replace(**{"processing.failure": 0.0}), settings, speedup=6000)
    processed = [sum(t is not None for t in c["timeline"]["processed"]) for c in seen]
    assert any(0 < n < 20 for n in processed)  # recorded mid-run, on the carousel's row
    assert processed == sorted(processed)


def test_a_live_run_in_service_mode_is_refused_before_anything_is_written(tmp_path):
    from idds.config import Settings

    settings = Settings(db_url=f"sqlite:///{tmp_path}/idds.db", url="http://127.0.0.1:9")
    spec = CampaignSpec.from_mapping({**SPEC, "name": "live-remote"})
    with pytest.raises(SpecError, match="unset IDDS_URL"):
        run_live(spec, settings, speedup=6000)
    assert not (tmp_path / "idds.db").exists()
