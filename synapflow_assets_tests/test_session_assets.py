import polars as pl
import pytest

from synapflow_assets.defs.resources import DataLake, DetectionSettings

IMPORTED = DetectionSettings(source="imported")
from synapflow_assets.evaluation import tracking_scores
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

from .conftest import write_stack


@pytest.fixture
def landed(tmp_path):
    sessions = simulate_animal(SimulationParams(shape=(16, 256, 256)), n_sessions=2, seed=3)
    for sim in sessions:
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    return DataLake(root=str(tmp_path)), sessions


def test_landed_sessions_become_3d_spines_that_match_the_truth(landed, instance):
    lake, sessions = landed
    report = process_landed(instance, lake, detection=IMPORTED)
    assert not report.failed and len(report.materialized) == 3
    spines = pl.read_parquet(lake.spines_path("m1", "day00"))
    boxes = pl.read_parquet(lake.spine_boxes_path("m1", "day00"))
    truth = sessions[0].boxes
    n_true = truth["spine_id"].n_unique()
    print(f"{len(spines)} 3D spines found, {n_true} true")
    assert abs(len(spines) - n_true) <= 0.25 * n_true
    assert spines["z_um"].is_between(0, 16).all() and (spines["x_um"] == spines["x_px"] * 0.12).all()
    assert set(spines["model"]) == {"imported:day00.detections.csv"}
    scores = tracking_scores(truth.rename({"spine_id": "id"}), boxes.filter(pl.col("id") >= 0))
    print(scores["idf1"], scores["mota"])
    assert scores["idf1"] > 0.8


def test_only_what_changed_is_recomputed(landed, instance, tmp_path):
    lake, _ = landed
    process_landed(instance, lake, detection=IMPORTED)
    again = process_landed(instance, lake, detection=IMPORTED)
    assert again.materialized == [] and sorted(again.up_to_date) == ["m1", "m1/day00", "m1/day04"]

    csv = tmp_path / "landing" / "m1" / "day04.detections.csv"
    table = pl.read_csv(csv)
    table.head(len(table) - 5).write_csv(csv)
    third = process_landed(instance, lake, detection=IMPORTED)
    assert third.materialized == [
        "m1/day04 (detections_2d, spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]
    assert third.up_to_date == ["m1/day00"]

    write_stack(
        tmp_path / "landing" / "m1" / "day00.tif", layers=16, size=(256, 256), seed=11, spacing=1.0, pixel_um=0.12
    )
    fourth = process_landed(instance, lake, detection=IMPORTED)
    assert fourth.materialized == ["m1/day00 (raw_volume, detections_2d, spines_3d, spine_features)"]
    assert "sessions day00 -> day04 do not align" in fourth.failed["m1"]  # the new day00 is another (random) image


def test_detections_outside_the_volume_fail_that_partition_only(landed, instance, tmp_path):
    lake, _ = landed
    csv = tmp_path / "landing" / "m1" / "day04.detections.csv"
    table = pl.read_csv(csv)
    table.with_columns(filename=pl.lit("day04_layer40.png")).write_csv(csv)
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.materialized == ["m1/day00 (raw_volume, detections_2d, spines_3d, spine_features)"]
    assert "not tracked: session day04 failed" in report.failed["m1"]
    assert "day04.detections.csv" in report.failed["m1/day04"] and "outside 0..15" in report.failed["m1/day04"]
    assert not lake.detections_path("m1", "day04").exists() and not lake.spines_path("m1", "day04").exists()
    table.write_csv(csv)
    assert process_landed(instance, lake, detection=IMPORTED).materialized == [
        "m1/day04 (detections_2d, spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]


def test_new_session_flows_into_tracks_and_only_its_pair_is_aligned(landed, instance, tmp_path):
    import dagster as dg

    lake, _sessions = landed
    process_landed(instance, lake, detection=IMPORTED)
    tracks = pl.read_parquet(lake.tracks_path("m1"))
    assert tracks["session"].unique().sort().to_list() == ["day00", "day04"]
    assert set(tracks["status"]) <= {"present", "new", "eliminated", "out_of_view", "unconfirmed"}
    third = simulate_animal(SimulationParams(shape=(16, 256, 256)), n_sessions=3, seed=3)[2]
    write_session(third, tmp_path / "landing", "m1", "day08")
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.materialized == [
        "m1/day08 (raw_volume, detections_2d, spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]
    event = instance.get_latest_materialization_event(dg.AssetKey("spine_tracks")).asset_materialization
    assert [c.split(" (")[0] for c in event.metadata["computed"].value] == ["align day04->day08"]
    assert event.metadata["sessions"].value == 3
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("spine_tracks"), "sessions_aligned")]
    )
    assert all(c.status.value == "SUCCEEDED" for c in check.values())
    tracks = pl.read_parquet(lake.tracks_path("m1"))
    truth = third.spines.filter(pl.col("status") == "new")
    print(tracks.filter(pl.col("session") == "day08").group_by("status").len().rows(), "true new", len(truth))


def test_sessions_with_different_voxel_sizes_fail_tracking_clearly(landed, instance, tmp_path):
    lake, _ = landed
    process_landed(instance, lake, detection=IMPORTED)
    write_stack(
        tmp_path / "landing" / "m1" / "day04.tif", layers=16, size=(256, 256), seed=11, spacing=2.0, pixel_um=0.2
    )
    report = process_landed(instance, lake, detection=IMPORTED)
    message = report.failed["m1"]
    assert "sessions differ in x/y pixel size by more than 5%" in message, message
    assert "day00 0.12 um (imagej), day04 0.2 um (imagej)" in message and "\n" not in message


def test_a_session_that_does_not_overlap_fails_the_animal_and_writes_nothing_downstream(landed, instance, tmp_path):
    """A session of another field of view stops the animal's tracks and dynamics with a message naming the
    pair; no tracks and no dynamics rows are written from it, and the sessions themselves are processed."""
    from datetime import timedelta

    from synapflow_assets.store.feature_store import stored_partitions
    from synapflow_assets.synthetic.files import FIRST_DAY

    lake, _ = landed
    elsewhere = simulate_animal(SimulationParams(shape=(16, 256, 256)), n_sessions=1, seed=123)[0]
    write_session(elsewhere, tmp_path / "landing", "m1", "day08", acquired_at=FIRST_DAY + timedelta(days=8))
    report = process_landed(instance, lake, detection=IMPORTED)
    assert sorted(report.failed) == ["m1"]
    assert report.failed["m1"].startswith("m1: sessions day04 -> day08 do not align: ")
    assert len(report.materialized) == 3
    assert not lake.tracks_path("m1").exists()
    assert ("m1",) not in stored_partitions(lake.store_path, "dynamics")


def test_changed_detection_settings_rerun_detections_and_keep_identical_tracks(landed, instance):
    """Imported boxes ignore the score threshold: the boxes are redone, found identical, and the tracks kept."""
    lake, _ = landed
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    stricter = DetectionSettings(source="imported", score_threshold=0.7)
    report = process_landed(instance, lake, detection=stricter)
    assert report.materialized == [
        "m1/day00 (detections_2d, spines_3d, spine_features)",
        "m1/day04 (detections_2d, spines_3d, spine_features)",
        "m1 (spine_dynamics)",
    ]
    assert process_landed(instance, lake, detection=stricter).materialized == []
