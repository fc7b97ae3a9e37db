"""``train-detector --self-train``: the lab's tracked spines become training boxes, and the gate decides."""

import duckdb
import polars as pl
import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.detection.self_training import SelfTrainParams, pseudo_labels
from synapflow_assets.pipeline import process_landed, recompute_dynamics
from synapflow_assets.store.feature_store import FeatureStore, query
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session
from synapflow_assets.synthetic.files import FIRST_DAY

from .conftest import mlflow_client
from .test_detector_training import TINY_ARGS

PARAMS = SimulationParams(shape=(16, 256, 256), elimination_prob=0.1, formation_rate=0.1)


@pytest.fixture
def lab(tmp_path, instance):
    for sim in simulate_animal(PARAMS, n_sessions=3, seed=7):
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    lake = DataLake(root=str(tmp_path))
    assert not process_landed(instance, lake, detection=DetectionSettings(source="imported")).failed
    return lake


def expected_places(tracks: pl.DataFrame, min_detected: int, min_confidence: float) -> pl.DataFrame:
    """The rule of the module docstring, computed here with polars from the tracks table."""
    found = pl.col("detected") & ~pl.col("redetected").fill_null(False)
    n_detected = tracks.group_by("track_id").agg(n=found.sum())
    rows = tracks.join(n_detected, on="track_id").filter(
        pl.col("status").is_in(["present", "new"]) & pl.col("xmin").is_not_null()
    )
    corrected = pl.col("corrected_by").is_not_null()
    dim = pl.col("redetected") & (pl.col("n") >= min_detected) & (pl.col("confidence").fill_null(1.0) >= min_confidence)
    return rows.filter(corrected | found | dim)


def test_pseudo_labels_are_the_detected_the_confident_dim_and_the_corrected_places(lab, instance):
    tracks = query(lab.store_path, "SELECT * FROM tracks")
    # a place the detector found, which a person says is not a spine, and one it missed, which is a spine
    wrong = tracks.filter(pl.col("detected") & (pl.col("status") == "present")).head(1)
    missed = tracks.filter(pl.col("status") == "eliminated").head(1)
    corrections = pl.concat([wrong.with_columns(new=pl.lit("unconfirmed")), missed.with_columns(new=pl.lit("present"))])
    corrections = corrections.select(
        "animal", "session", "track_id", "x_um", "y_um", "z_um", computed_status="status", status="new"
    ).with_columns(corrected_by=pl.lit("tester"), corrected_at=pl.lit(FIRST_DAY), note=pl.lit(None, pl.String))
    with FeatureStore(lab.store_path) as store:
        store.add_corrections(corrections.cast({"corrected_at": pl.Datetime("us", "UTC")}))
    assert recompute_dynamics(instance, lab, "m1") is None
    # two places the detector missed in the last session of spines it found in the first two, redetected there as
    # the tracker marks them (a box, detected and redetected; imported boxes have no weak candidates, so the tracker
    # redetects none here): one confident, one not
    found_thrice = tracks.filter(pl.col("detected")).group_by("track_id").len().filter(pl.col("len") == 3)
    dim_tracks = sorted(found_thrice["track_id"])[:2]
    assert len(dim_tracks) == 2
    with duckdb.connect(str(lab.store_path)) as connection:
        for track_id, confidence in zip(dim_tracks, (0.9, 0.5), strict=True):
            connection.execute(
                "UPDATE tracks SET redetected = true, confidence = ? WHERE track_id = ? AND session = 'day08'",
                [confidence, track_id],
            )
    tracks = query(lab.store_path, "SELECT * FROM tracks")

    for params in (SelfTrainParams(), SelfTrainParams(min_detected=3, min_confidence=0.0)):
        labels, summary = pseudo_labels(lab.root, params=params)
        expected = expected_places(tracks, params.min_detected, params.min_confidence)
        assert summary["places"] == len(expected) and summary["sessions"] == 3 and summary["animals"] == 1
        assert summary["from_corrections"] == 1  # the place corrected to present; the unconfirmed one is gone
        assert summary["from_redetected"] == (1 if params.min_detected == 2 else 0)
        plain = expected.filter(pl.col("corrected_by").is_null() & ~pl.col("redetected").fill_null(False))
        assert summary["from_detector"] == len(plain)
        layers = (expected["last_layer"] - expected["first_layer"].clip(0) + 1).clip(upper_bound=16).sum()
        assert summary["boxes"] == len(labels) == layers
        assert labels["layer"].is_between(0, 15).all() and (labels["xmax"] > labels["xmin"]).all()
        assert set(labels["volume"]) == {f"{lab.root}/volumes/m1/day{d:02d}.ome.zarr" for d in (0, 4, 8)}
    x, y, session = wrong.select("xmin", "ymin", "session").row(0)
    same = (pl.col("xmin") == x) & (pl.col("ymin") == y) & (pl.col("session") == session)
    assert not len(expected_places(tracks, 2, 0.8).filter(same))


def test_self_train_fine_tunes_on_the_lab_and_says_what_it_learned_from(
    lab, tmp_path, capsys, embedded_registry, no_shared_data
):
    from synapflow_assets.detection import registry as R
    from synapflow_assets.detection.inference import SpineDetector
    from synapflow_assets.detection.model import build_model, tiny_spec

    start = tmp_path / "tiny"
    SpineDetector(build_model(tiny_spec(), seed=0), tiny_spec()).save(start)
    _, summary = pseudo_labels(lab.root)
    args = ["train-detector", "--self-train", "--init", str(start), *TINY_ARGS, "--data-root", str(lab.root)]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"self-training from {start} on {summary['boxes']} boxes" in out
    assert pl.read_csv(tmp_path / "run" / "self_train_labels.csv").height == summary["boxes"]
    client = mlflow_client(lab.root)
    run = client.search_runs(client.get_experiment_by_name(R.EXPERIMENT).experiment_id, "tags.`self_train.boxes` != ''")
    assert len(run) == 1 and run[0].info.run_name == "self-train"
    assert run[0].data.tags["self_train.from_redetected"] == str(summary["from_redetected"])
    assert run[0].data.tags["gate.decision"] in ("promoted", "kept")


def test_self_train_refuses_in_one_line(tmp_path, capsys, embedded_registry):
    assert main(["train-detector", "--self-train", "--out", str(tmp_path / "run"), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no feature store" in err[0] and "ingest" in err[0]
    assert main(["train-detector", "--animal", "m1", "--out", str(tmp_path / "run")]) == 2
    assert "--animal needs --self-train" in capsys.readouterr().err
