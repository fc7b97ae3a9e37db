import dagster as dg
import polars as pl
import pytest

from synapflow_assets.defs.detector_assets import spine_detector
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.detection import baseline, champion
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_landing

from .conftest import promote_shipped_copy

pytestmark = pytest.mark.usefixtures("embedded_registry")


def test_champion_detects_spines_and_a_new_champion_makes_detections_stale(tmp_path, instance):
    lake = DataLake(root=str(tmp_path))
    simulate_landing(tmp_path / "landing", animals=1, sessions=1, params=SimulationParams(shape=(8, 192, 256)))
    first = process_landed(instance, lake)
    assert not first.failed, first.failed
    detections = pl.read_parquet(lake.detections_path("mouse01", "day00"))
    assert set(detections["model"]) == {"spine-detector"} and set(detections["model_version"]) == {"1"}
    assert detections["layer"].is_between(0, 7).all()
    assert ((detections["xmin"] >= 0) & (detections["xmax"] <= 256) & (detections["ymax"] <= 192)).all()
    candidates = pl.read_parquet(lake.candidates_path("mouse01", "day00"))
    assert len(candidates) >= len(detections) and candidates["score"].min() >= 0.1
    assert (
        candidates.filter(pl.col("score") >= 0.35).sort("layer", "xmin")["xmin"].to_list()
        == detections.sort("layer", "xmin")["xmin"].to_list()
    )  # one pass: the detections are the strong candidates
    progress = [
        e.user_message
        for run in instance.get_runs()
        for e in instance.all_logs(run.run_id)
        if "detector on" in (e.user_message or "")
    ]
    assert progress[-1].startswith("mouse01/day00: detector on 8/8 layers") and len(progress) >= 2
    assert process_landed(instance, lake).materialized == []

    decision = promote_shipped_copy(lake.root, tmp_path / "better")
    assert decision.promoted and decision.champion == "2"
    dg.materialize([spine_detector], instance=instance, resources={"lake": lake})
    rerun = process_landed(instance, lake)
    assert rerun.materialized[0] == "mouse01/day00 (detections_2d, spines_3d, spine_features)"
    assert set(pl.read_parquet(lake.detections_path("mouse01", "day00"))["model_version"]) == {"2"}


def _materialize_detections(tmp_path, instance, detection):
    from synapflow_assets.defs.detection_assets import detections_2d
    from synapflow_assets.defs.partitions import register_sessions, session_partition_key
    from synapflow_assets.defs.resources import ImagingSettings
    from synapflow_assets.defs.volume_assets import raw_volume

    lake = DataLake(root=str(tmp_path / "data"))
    simulate_landing(lake.landing, animals=1, sessions=1, params=SimulationParams(shape=(6, 128, 160)))
    register_sessions(instance, [("mouse01", "day00")])
    result = dg.materialize(
        [raw_volume, detections_2d],
        instance=instance,
        partition_key=session_partition_key("mouse01", "day00"),
        resources={"lake": lake, "imaging": ImagingSettings(), "detection": detection},
    )
    assert result.success
    return lake, pl.read_parquet(lake.detections_path("mouse01", "day00"))


def test_detections_2d_registers_the_shipped_champion_on_a_fresh_registry(tmp_path, instance):
    lake, detections = _materialize_detections(tmp_path, instance, DetectionSettings())
    assert champion.champion_info(lake.root).version == "1" and len(detections) > 0
    assert set(detections["model"]) == {"spine-detector"} and set(detections["model_version"]) == {"1"}


def test_detections_2d_with_the_log_baseline(tmp_path, instance):
    _lake, detections = _materialize_detections(tmp_path, instance, DetectionSettings(source="baseline"))
    assert len(detections) > 0 and detections["layer"].is_between(0, 5).all()
    assert set(detections["model"]) == {baseline.MODEL_NAME} and set(detections["model_version"]) == {
        baseline.CODE_VERSION
    }
    assert ((detections["xmin"] >= 0) & (detections["xmax"] <= 160) & (detections["ymax"] <= 128)).all()
    assert not (tmp_path / "data" / "mlflow").exists()


def test_unknown_detection_source_is_rejected():
    with pytest.raises(ValueError, match="unknown detection source 'yolo'; expected one of model, imported, baseline"):
        DetectionSettings(source="yolo")
    with pytest.raises(ValueError, match="positive"):
        DetectionSettings(upscale=0)
