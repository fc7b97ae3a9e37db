"""Confidences and intervals in the store, and the review loop: export, correct, apply, survive a rerun."""

import re
from datetime import timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest
import zarr
from PIL import Image

from synapflow_assets.__main__ import main
from synapflow_assets.defs.feature_assets import spine_dynamics
from synapflow_assets.defs.resources import AlignmentSettings, DataLake, DetectionSettings
from synapflow_assets.defs.track_assets import spine_tracks
from synapflow_assets.features.size_change import size_changes
from synapflow_assets.pipeline import process_landed, recompute_dynamics
from synapflow_assets.store.feature_store import FeatureStore, query
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session
from synapflow_assets.synthetic.files import FIRST_DAY
from synapflow_assets.tools.review import export_review, labels_from_corrections, read_review

IMPORTED = DetectionSettings(source="imported")
PARAMS = SimulationParams(shape=(16, 256, 256), elimination_prob=0.15, formation_rate=0.15)


@pytest.fixture
def processed(tmp_path, instance):
    for sim in simulate_animal(PARAMS, n_sessions=3, seed=5):
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    lake = DataLake(root=str(tmp_path))
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    return lake


def tracks_of(lake) -> pl.DataFrame:
    return query(lake.store_path, "SELECT * FROM tracks ORDER BY session_index, track_id")


def test_events_carry_confidence_and_reason_and_rates_their_intervals(processed):
    tracks = tracks_of(processed)
    events = tracks.filter(pl.col("status").is_in(["new", "eliminated"]))
    assert len(events) >= 4
    assert events["confidence"].is_between(0, 1).all() and events["reason"].str.contains("detector").all()
    assert events.filter(pl.col("status") == "eliminated")["x_um"].is_not_null().all()  # the place looked at
    curve = query(processed.store_path, "SELECT * FROM survival_curve WHERE session_index > 0")
    assert len(curve) == 2
    for rate, low, high in (
        ("formation_rate", "formation_low", "formation_high"),
        ("elimination_rate", "elimination_low", "elimination_high"),
        ("survival_fraction", "survival_low", "survival_high"),
    ):
        assert ((curve[low] <= curve[rate]) & (curve[rate] <= curve[high]) & (curve[low] < curve[high])).all()
    uncertain = query(processed.store_path, "SELECT confidence FROM uncertain_events")["confidence"]
    assert len(uncertain) >= len(events) and uncertain.is_sorted()


def test_review_round_trip_changes_exactly_the_reviewed_rows_and_survives_a_rerun(processed, instance, tmp_path):
    lake = processed
    before = tracks_of(lake)
    dynamics_before = query(lake.store_path, "SELECT * FROM dynamics ORDER BY session_index")
    exported = export_review(tmp_path, "m1", tmp_path / "review", limit=40)
    assert 0 < len(exported) <= 40 and exported["confidence"].is_sorted()
    for name in exported["picture"]:
        with Image.open(tmp_path / "review" / name) as picture:
            assert picture.width > picture.height > 20  # two panels side by side
    csv = pl.read_csv(tmp_path / "review" / "review.csv", infer_schema_length=0)
    target = csv.filter(pl.col("status") == "eliminated").head(1)
    assert len(target) == 1, "the simulated animal has eliminations to review"
    csv = csv.with_columns(
        corrected_status=pl.when(pl.col("track_id") == target["track_id"][0])
        .then(pl.lit("present"))
        .otherwise(pl.lit("")),
        note=pl.lit("checked"),
    )
    csv.write_csv(tmp_path / "review" / "review.csv")

    corrections = read_review(tmp_path / "review" / "review.csv", corrected_by="tester")
    assert len(corrections) == 1 and corrections["status"][0] == "present"
    with FeatureStore(lake.store_path) as store:
        store.add_corrections(corrections)
    assert recompute_dynamics(instance, lake, "m1") is None

    def check():
        after = tracks_of(lake)
        changed = after.join(before.select("session_index", "track_id", old="status"), on=["session_index", "track_id"])
        changed = changed.filter(pl.col("status") != pl.col("old"))
        assert changed.select("session", "track_id", "status", "old").rows() == [
            (target["session"][0], int(target["track_id"][0]), "present", "eliminated")
        ]
        corrected = after.filter(pl.col("corrected_by").is_not_null())
        assert corrected.select("corrected_by", "computed_status", "confidence").rows() == [
            ("tester", "eliminated", 1.0)
        ]
        dynamics = query(lake.store_path, "SELECT * FROM dynamics ORDER BY session_index")
        index = int(target["session_index"][0])
        assert dynamics["lost"][index] == dynamics_before["lost"][index] - 1
        assert dynamics["n_in_view"][index] == dynamics_before["n_in_view"][index] + 1

    check()
    dg.materialize(
        [spine_tracks, spine_dynamics],
        instance=instance,
        partition_key="m1",
        resources={"lake": lake, "alignment": AlignmentSettings()},
    )
    check()  # recomputed from scratch: the correction is applied again, by place
    labels = labels_from_corrections(tmp_path, "m1")
    assert len(labels) >= 1 and (labels["xmax"] > labels["xmin"]).all()
    assert labels["volume"].str.ends_with(f"{target['session'][0]}.ome.zarr").all()


def test_review_cli_exports_and_refuses_an_unknown_status(processed, tmp_path, capsys):
    assert (
        main(["review", "--animal", "m1", "--out", str(tmp_path / "r"), "--limit", "3", "--data", str(tmp_path)]) == 0
    )
    assert "events to review" in capsys.readouterr().out
    csv = pl.read_csv(tmp_path / "r" / "review.csv", infer_schema_length=0)
    csv.with_columns(corrected_status=pl.lit("gone")).write_csv(tmp_path / "r" / "review.csv")
    assert main(["review", "--apply", str(tmp_path / "r" / "review.csv"), "--data", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "review.csv: line 2: unknown status 'gone'" in error and "present, new, eliminated" in error
    assert query(processed.store_path, "SELECT count(*) FROM corrections").item() == 0
    assert main(["review", "--animal", "nobody", "--out", str(tmp_path / "n"), "--data", str(tmp_path)]) == 2
    assert "no tracks of animal 'nobody'" in capsys.readouterr().err


def test_a_failed_alignment_leaves_no_rates_for_its_session(processed, instance, tmp_path):
    elsewhere = simulate_animal(PARAMS, n_sessions=1, seed=99)[0]
    write_session(elsewhere, tmp_path / "landing", "m1", "day12", acquired_at=FIRST_DAY + timedelta(days=12))
    report = process_landed(instance, processed, detection=IMPORTED)
    assert "do not align" in report.failed["m1"]
    rates = query(processed.store_path, "SELECT session, formation_rate FROM dynamics ORDER BY session_index")
    assert "day12" not in rates["session"].to_list()
    assert rates["formation_rate"].drop_nulls().len() == 2  # the aligned sessions keep theirs


def test_corrected_spines_become_training_boxes_and_the_gate_decides(
    processed, instance, tmp_path, capsys, embedded_registry, no_shared_data
):
    from synapflow_assets.detection import registry as R
    from synapflow_assets.detection.real_data import labelled_samples

    from .conftest import mlflow_client, registered_versions
    from .test_detector_training import TINY_ARGS

    eliminated = tracks_of(processed).filter(pl.col("status") == "eliminated").head(2)
    corrections = eliminated.select(
        "animal", "session", "track_id", "x_um", "y_um", "z_um", computed_status="status"
    ).with_columns(
        status=pl.lit("present"),
        corrected_by=pl.lit("tester"),
        corrected_at=pl.lit(FIRST_DAY),
        note=pl.lit(None, pl.String),
    )
    with FeatureStore(processed.store_path) as store:
        store.add_corrections(corrections.cast({"corrected_at": pl.Datetime("us", "UTC")}))
    assert recompute_dynamics(instance, processed, "m1") is None
    labels = tmp_path / "labels.csv"
    assert main(["review", "--animal", "m1", "--labels", str(labels), "--data", str(tmp_path)]) == 0
    samples = labelled_samples(labels)
    n_boxes = sum(len(s.boxes) for s in samples)
    assert n_boxes == len(pl.read_csv(labels)) >= 2 and all(s.image.shape == (256, 256) for s in samples)
    assert main(["review", "--apply", str(tmp_path / "missing.csv"), "--data", str(tmp_path)]) == 2
    capsys.readouterr()
    registry = tmp_path / "registry"
    assert (
        main(
            [
                "train-detector",
                *TINY_ARGS,
                "--extra-labels",
                str(labels),
                "--out",
                str(tmp_path / "run"),
                "--data-root",
                str(registry),
            ]
        )
        == 0
    )
    assert f"{len(samples)} corrected" in capsys.readouterr().out
    latest = registered_versions(registry)[-1]
    assert mlflow_client(registry).get_model_version(R.MODEL_NAME, str(latest)).tags["gate.decision"] in (
        "promoted",
        "kept",
    )


def test_dynamics_shows_its_plot_and_per_session_table_in_the_ui(processed, instance):
    import base64
    import io

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=spine_dynamics.key, asset_partitions=["m1"]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata
    assert list(metadata)[:2] == ["dynamics_plot", "per_session"]
    png = base64.b64decode(metadata["dynamics_plot"].value.split("base64,")[1].rstrip(")"))
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.width > 400 and picture.height > 150
    table = metadata["per_session"].value
    assert [r.data["session"] for r in table.records] == ["day00", "day04", "day08"]
    stored = query(processed.store_path, "SELECT formation_low FROM dynamics ORDER BY session_index")
    assert table.records[1].data["formation_low"] == round(stored["formation_low"][1], 3)
    assert {c.name for c in table.schema.columns} >= {"formation_rate", "formation_low", "survival_high"}
    assert metadata["dagster/row_count"].value == 3
    run = instance.get_run_by_id(records[0].run_id)
    assert run.tags["synapflow/origin"] == "command line" and run.job_name == "update_animals"
    assert metadata["size_trajectories"].value.startswith("![m1: size of persistent spines](data:image/png;base64,")
    assert [c.name for c in metadata["dagster/column_schema"].value.columns][:3] == [
        "animal",
        "session",
        "session_index",
    ]


def test_persistent_sizes_are_relative_to_the_first_session():
    from synapflow_assets.features.dynamics_plots import persistent_sizes, size_trajectories_png

    tracks = pl.DataFrame(
        {
            "session": ["d0", "d4", "d8"] * 3,
            "session_index": [0, 1, 2] * 3,
            "track_id": [1, 1, 1, 2, 2, 2, 3, 3, 3],
            "size": [2.0, 3.0, 1.0, 4.0, None, 4.0, 1.0, 1.5, 2.0],
        }
    )
    sizes = persistent_sizes(tracks)
    assert sorted(set(sizes["track_id"])) == [1, 3]  # track 2 is absent in d4
    assert sizes.filter(pl.col("track_id") == 1)["relative_size"].to_list() == [1.0, 1.5, 0.5]
    assert sizes.filter(pl.col("track_id") == 3)["relative_size"].to_list() == [1.0, 1.5, 2.0]
    assert size_trajectories_png(tracks).startswith(b"\x89PNG")


def test_napari_export_registers_volumes_and_tracks_into_the_first_frame(processed, tmp_path, capsys):
    assert main(["export-napari", "--animal", "m1", "--out", str(tmp_path / "napari"), "--data", str(tmp_path)]) == 0
    tracks = pl.read_csv(tmp_path / "napari" / "tracks.csv")
    points = pl.read_csv(tmp_path / "napari" / "points.csv")
    assert tracks.columns == ["track_id", "t", "z_um", "y_um", "x_um"] and set(tracks["t"]) == {0, 1, 2}
    assert {"status", "size"} <= set(points.columns)
    # a spine kept through the sessions stays at one place in the first session's frame (0.12 um pixels)
    spread = (
        tracks.group_by("track_id").agg(pl.len(), pl.col("y_um").std(), pl.col("x_um").std()).filter(pl.col("len") == 3)
    )
    assert len(spread) > 10 and spread["y_um"].median() < 0.2 and spread["x_um"].median() < 0.2
    volumes = np.asarray(zarr.open_group(str(tmp_path / "napari" / "m1.ome.zarr"), mode="r")["0"][:])
    assert volumes.shape[0] == 3
    first, last = volumes[0].max(axis=0).astype(float), volumes[2].max(axis=0).astype(float)
    inside = last > 0
    assert np.corrcoef(first[inside], last[inside])[0, 1] > 0.8
    # the points, put on the volume's grid through its scale, sit on bright structure of their session
    voxel = query(processed.store_path, "SELECT voxel_z_um, voxel_y_um, voxel_x_um FROM sessions LIMIT 1").row(0)
    present = points.filter(pl.col("status") == "present")
    index = np.rint(present.select("z_um", "y_um", "x_um").to_numpy() / np.asarray(voxel)).astype(int)
    inside = np.all((index >= 0) & (index < volumes.shape[1:]), axis=1)
    values = [volumes[t, z, y, x] for t, (z, y, x) in zip(present["t"].to_numpy()[inside], index[inside], strict=False)]
    assert np.median(values) > np.percentile(volumes[0], 95)
    assert main(["export-napari", "--animal", "nobody", "--out", str(tmp_path / "n"), "--data", str(tmp_path)]) == 2


def test_report_is_one_self_contained_html_page_per_animal(processed, tmp_path, capsys):
    from html.parser import HTMLParser

    assert main(["report", "--out", str(tmp_path / "report.html"), "--data", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()

    class Images(HTMLParser):
        sources: list = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.sources.append(dict(attrs)["src"])

    parser = Images()
    parser.feed(page)
    assert len(parser.sources) == 4 + 3 and all(s.startswith("data:image/png;base64,") for s in parser.sources)
    assert "<h2>m1</h2>" in page and "Alignment of consecutive sessions" in page and "day04</td><td>day08" in page
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", page)  # visible, one under every picture
    assert len(captions) == len(parser.sources) and "day04: " in captions[5] and "on the maximum projection" in page
    assert captions[2].startswith("m1: head diameter (um), neck length (um) and head volume (um^3) of the spines")
    assert captions[3].startswith("m1: head volume of each persistent spine relative to its first session")
    assert "Head volume change from the first to the last session in view" in page
    # the store's view of size changes is the pure function's, on the same rows
    tracks = query(
        processed.store_path,
        """SELECT t.animal, t.track_id, t.session, t.session_index, t.status, f.head_volume_um3 FROM tracks t
        LEFT JOIN spine_features f ON f.spine_key = t.spine_key""",
    )
    view = query(processed.store_path, "SELECT * FROM size_changes ORDER BY animal, track_id")
    expected = size_changes(tracks).sort("animal", "track_id")
    assert len(view) > 10 and view["track_id"].to_list() == expected["track_id"].to_list()
    for column in ("size_change", "size_change_low", "size_change_high"):
        assert np.allclose(view[column].to_numpy(), expected[column].to_numpy())
    dynamics = query(processed.store_path, "SELECT round(formation_high, 3) AS h FROM dynamics WHERE session_index = 1")
    assert f"<td>{dynamics['h'][0]}</td>" in page
    assert "Detector: " in page and "imported:day00.detections.csv version " in page
    assert main(["report", "--out", str(tmp_path / "x.html"), "--animal", "nobody", "--data", str(tmp_path)]) == 2
    assert "no sessions of animal 'nobody'" in capsys.readouterr().err


def test_report_opens_in_a_browser(processed, tmp_path):
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    assert main(["report", "--out", str(tmp_path / "report.html"), "--data", str(tmp_path)]) == 0
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1100,1400",
            f"--screenshot={shot}",
            (tmp_path / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as picture:
        grey = picture.convert("L")
        assert picture.size == (1100, 1400) and len(grey.getcolors(65536) or []) > 50  # drawn plots, not a blank page


def test_per_layer_metadata_are_compact_tables(processed, instance):
    def latest(key):
        return (
            instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=["m1/day00"]), limit=1
            )
            .records[0]
            .asset_materialization.metadata
        )

    shifts = latest("raw_volume")["layer_shifts_px"].value
    assert len(shifts.records) == 16 and {c.name for c in shifts.schema.columns} == {"layer", "dy_px", "dx_px"}
    detections = latest("detections_2d")
    assert next(iter(detections)) == "detections_on_projection"
    assert sum(r.data["boxes"] for r in detections["per_layer"].value.records) == detections["detections"].value


def test_review_apply_says_when_a_correction_matches_nothing(processed, tmp_path, capsys, monkeypatch):
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    csv = tmp_path / "far.csv"
    pl.DataFrame(
        {
            "animal": ["m1"],
            "session": ["day04"],
            "track_id": [1],
            "x_um": [-50.0],
            "y_um": [-50.0],
            "z_um": [0.0],
            "status": ["eliminated"],
            "corrected_status": ["present"],
        }
    ).write_csv(csv)
    assert main(["review", "--apply", str(csv), "--data", str(tmp_path / "empty")]) == 2
    assert "no feature store to correct" in capsys.readouterr().err
    assert main(["review", "--apply", str(csv), "--data", str(tmp_path)]) == 1
    assert "1 corrections match no track row within 1 um" in capsys.readouterr().err
