"""Issue [1/7]: single planes, sparse fields, per-lab settings, metadata, colour, loud one-line failures."""

import os
import re
import subprocess
import sys

import dagster as dg
import numpy as np
import polars as pl
import pytest
import tifffile
from PIL import Image

from synapflow_assets.defs.detection_assets import detection_count_problem
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.detection.inputs import read_input
from synapflow_assets.detection.real_data import shared_data_root
from synapflow_assets.imaging.colour import COLOUR_NOTE
from synapflow_assets.imaging.readers import read_volume
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import (
    SimulationParams,
    project_session,
    simulate_animal,
    simulate_landing,
    write_session,
)
from synapflow_assets.tracking.align import align_sessions

from .conftest import write_stack

IMPORTED = DetectionSettings(source="imported")
SPARSE = SimulationParams(
    shape=(12, 512, 512),
    n_dendrites=(1, 1),
    spine_density_per_um=(0.3, 0.4),
    max_drift_px=30,
    max_rotation_deg=0.75,
    world_margin_um=10.0,
    max_drift_layers=1,
    layer_jitter_px=0.0,
)


def mapped_error(alignment, earlier, later) -> float:
    both = earlier.spines.join(later.spines, on="spine_id", suffix="_b").filter(
        pl.col("status").is_in(["present", "new"]) & (pl.col("status_b") == "present")
    )
    mapped = alignment.map_points(both.select("y", "x").to_numpy())
    return float(np.hypot(*(mapped - both.select("y_b", "x_b").to_numpy()).T).mean())


def test_a_sparse_single_plane_field_aligns_and_is_trusted():
    sessions = [project_session(s) for s in simulate_animal(SPARSE, n_sessions=2, seed=1)]
    step = align_sessions(sessions[0].volume, sessions[1].volume)
    error = mapped_error(step, *sessions)
    print(f"structure blocks {step.structure_blocks}, trusted {step.trusted_blocks:.2f}, error {error:.2f} px")
    assert step.ok and step.problem() is None
    assert step.z_shift == 0 and np.isnan(step.z_score)
    assert error < 1.0
    assert step.structure_blocks < 0.5 * step.field_yx[0].size  # most blocks are background, and not counted


def test_single_plane_sessions_ingest_and_track_with_rates(tmp_path, instance):
    params = SimulationParams(shape=(10, 320, 320), layer_jitter_px=0.0, elimination_prob=0.2, formation_rate=0.2)
    simulate_landing(tmp_path / "landing", animals=1, sessions=3, seed=4, params=params, single_plane=True)
    lake = DataLake(root=str(tmp_path))
    report = process_landed(instance, lake, detection=IMPORTED)
    assert not report.failed, report.failed
    tracks = pl.read_parquet(lake.tracks_path("mouse01"))
    assert tracks["session"].n_unique() == 3
    import duckdb

    with duckdb.connect(str(lake.store_path), read_only=True) as con:
        rows = con.execute("SELECT session, formation_rate, elimination_rate FROM dynamics ORDER BY session").fetchall()
    print(rows)
    assert len(rows) == 3 and all(f is not None and e is not None for _, f, e in rows[1:])
    assert all(0 < f < 0.6 and 0 < e < 0.6 for _, f, e in rows[1:])


@pytest.fixture
def two_animals(tmp_path):
    for animal, seed in (("m1", 3), ("m2", 8)):
        for sim in simulate_animal(SimulationParams(shape=(8, 192, 192)), n_sessions=2, seed=seed):
            write_session(sim, tmp_path / "landing", animal, f"day{4 * sim.index:02d}")
    return DataLake(root=str(tmp_path))


def test_settings_files_make_exactly_the_affected_partitions_stale(two_animals, instance, tmp_path):
    lake = two_animals
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    (tmp_path / "landing" / "m2" / "synapflow.yaml").write_text("imaging:\n  pixel_size_um: 0.1\n")
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.materialized == [
        "m2/day00 (raw_volume, detections_2d, spines_3d, spine_features)",
        "m2/day04 (raw_volume, detections_2d, spines_3d, spine_features)",
        "m2 (spine_tracks, spine_dynamics)",
    ]
    from synapflow_assets.imaging.ome_zarr import read_volume_info

    _, voxel, attributes = read_volume_info(lake.volume_path("m2", "day00"))
    assert voxel[1:] == (0.1, 0.1) and attributes["voxel_size_sources"]["x"] == "settings"
    assert attributes["channel_choice"] == "only channel"

    (tmp_path / "landing" / "m1" / "synapflow.yaml").write_text("alignment:\n  min_trusted_blocks: 0.2\n")
    assert process_landed(instance, lake, detection=IMPORTED).materialized == ["m1 (spine_tracks, spine_dynamics)"]

    (tmp_path / "landing" / "m1" / "synapflow.yaml").write_text(
        "alignment:\n  min_trusted_blocks: 0.2\ndepth:\n  smooth_layers: 0\n"
    )
    assert process_landed(instance, lake, detection=IMPORTED).materialized == [
        "m1/day00 (spines_3d, spine_features)",
        "m1/day04 (spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]
    recorded = instance.get_latest_materialization_event(dg.AssetKey("spines_3d"))
    assert recorded is not None and recorded.asset_materialization.metadata["settings"].value["smooth_layers"] == 0

    (tmp_path / "landing" / "synapflow.yaml").write_text("detection:\n  score_threshold: 0.5\n")
    report = process_landed(instance, lake, detection=IMPORTED)
    assert [m.split(" ")[0] for m in report.materialized] == [
        "m1/day00",
        "m1/day04",
        "m2/day00",
        "m2/day04",
        "m1",
        "m2",
    ]
    assert all("(detections_2d, spines_3d, spine_features)" in m for m in report.materialized[:4])

    (tmp_path / "landing" / "m1" / "synapflow.yaml").write_text("alignment:\n  min_trusted_blokcs: 0.2\n")
    report = process_landed(instance, lake, detection=IMPORTED)
    assert "m1/synapflow.yaml: invalid settings: alignment.min_trusted_blokcs" in report.failed["m1/day00"]
    assert "m1" in report.failed and not any(k.startswith("m2") for k in report.failed)


def scanimage_text(fov=True) -> str:
    text = "SI.hChannels.channelSave = 1\nSI.hStackManager.actualStackZStepSize = 2\n"
    if fov:
        text += (
            "SI.hRoiManager.imagingFovUm = [-51.2 -25.6;51.2 -25.6;51.2 25.6;-51.2 25.6]\n"
            "SI.hRoiManager.pixelsPerLine = 128\nSI.hRoiManager.linesPerFrame = 64\n"
        )
    return text


def test_scanimage_pixel_size_is_read_and_a_missing_one_is_said(tmp_path, instance):
    data = np.random.default_rng(0).integers(0, 4000, (4, 64, 128)).astype(np.uint16)
    path = tmp_path / "si.tif"
    tifffile.imwrite(path, data, software=scanimage_text(), description=scanimage_text(), metadata=None)
    volume = read_volume(path)
    assert volume.voxel_size_um == pytest.approx((2.0, 0.8, 0.8))
    assert volume.metadata["voxel_size_sources"] == {"z": "scanimage", "y": "scanimage", "x": "scanimage"}
    assert read_volume(path, pixel_size_um=0.5).voxel_size_um == pytest.approx((2.0, 0.5, 0.5))

    landing = tmp_path / "data" / "landing" / "m1"
    write_stack(landing / "day00.tif", layers=6, size=(128, 128))
    tifffile.imwrite(
        landing / "day00.tif",
        tifffile.imread(landing / "day00.tif"),
        software=scanimage_text(fov=False),
        description=scanimage_text(fov=False),
        metadata=None,
    )
    (landing / "day00.detections.csv").write_text("filename,width,height,class,score,xmin,ymin,xmax,ymax\n")
    report = process_landed(instance, DataLake(root=str(tmp_path / "data")), detection=IMPORTED)
    assert not report.failed
    said = [
        line
        for line in report.warnings
        if line.startswith("m1/day00: raw_volume check pixel_size_known: no x/y pixel size in day00.tif; ")
    ]
    assert len(said) == 1 and re.search(
        r"; [\d.]+ um/px (estimated for the animal: [\d.]+ um/px, the median of 1 session|assumed).* \(set imaging",
        said[0],
    ), report.warnings


def test_colour_is_read_as_grey_identically_by_ingest_and_detect(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (3, 48, 48, 3)).astype(np.uint8)
    grey = rgb.max(axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    volume = read_volume(tmp_path / "rgb.tif")
    detected, is_stack, notes, _ = read_input(tmp_path / "rgb.tif")
    np.testing.assert_array_equal(volume.data, grey)
    np.testing.assert_array_equal(detected, volume.data)
    assert is_stack and notes[0] == volume.metadata["colour_note"] == COLOUR_NOTE

    folder = tmp_path / "s1"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(rgb[k]).save(folder / f"s1_layer{k:02d}.png")
    from_folder = read_volume(folder)
    single, _, single_notes, _ = read_input(folder / "s1_layer01.png")
    np.testing.assert_array_equal(from_folder.data, grey)
    np.testing.assert_array_equal(single, grey[1])
    assert from_folder.metadata["colour_note"] == single_notes[0] == COLOUR_NOTE


@pytest.mark.parametrize("pages", [3, 4])
def test_small_grey_stacks_written_with_tifffile_defaults_are_layers(tmp_path, pages):
    data = np.random.default_rng(pages).integers(0, 60000, (pages, 40, 50)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", data)
    volume = read_volume(tmp_path / "g.tif")
    np.testing.assert_array_equal(volume.data, data)
    assert "read as" in volume.metadata["colour_note"] and f"{pages} layers" in volume.metadata["colour_note"]


def test_detection_count_problem():
    assert detection_count_problem(0, []) == "no spine detected in this session"
    assert detection_count_problem(10, [40, 50, 60]).startswith("10 boxes, under 50% of the median")
    assert detection_count_problem(30, [40, 50, 60]) is None and detection_count_problem(5, []) is None


def test_ingest_prints_one_line_per_failure_and_exits_non_zero(tmp_path):
    landing = tmp_path / "data" / "landing"
    for sim in simulate_animal(SimulationParams(shape=(8, 160, 160)), n_sessions=1, seed=2):
        write_session(sim, landing, "m1", "day00")
    write_stack(landing / "m2" / "day00.tif", layers=4, size=(64, 64))
    (landing / "m2" / "day00.tif").write_bytes((landing / "m2" / "day00.tif").read_bytes()[:3000])
    (landing / "bad animal").mkdir()
    write_stack(landing / "bad animal" / "day00.tif", layers=4, size=(64, 64))
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(tmp_path / "data"), "--source", "imported"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 1
    assert "Traceback" not in output
    failed = [line for line in done.stderr.splitlines() if line.startswith(("FAILED", "SKIPPED"))]
    assert len(failed) == 3
    assert any(line.startswith("FAILED m2/day00: ") and "day00.tif: truncated" in line for line in failed)
    assert any(line.startswith("FAILED m2: not tracked: session day00 failed") for line in failed)
    assert any(line.startswith("SKIPPED ") and "bad animal" in line for line in failed)
    assert "ran m1/day00" in done.stdout


def test_a_failed_run_gives_one_line_to_the_failure_sensor(tmp_path, instance):
    import dagster as dg

    from synapflow_assets.defs.landing_sensor import failure_summary_line, failure_summary_sensor
    from synapflow_assets.defs.partitions import register_sessions, session_partition_key
    from synapflow_assets.defs.resources import ImagingSettings
    from synapflow_assets.defs.run_messages import step_failure_line
    from synapflow_assets.defs.volume_assets import raw_volume

    (tmp_path / "landing" / "m1").mkdir(parents=True)
    (tmp_path / "landing" / "m1" / "day00.tif").write_text("not an image")
    register_sessions(instance, [("m1", "day00")])
    result = dg.materialize(
        [raw_volume],
        instance=instance,
        partition_key=session_partition_key("m1", "day00"),
        resources={"lake": DataLake(root=str(tmp_path)), "imaging": ImagingSettings()},
        raise_on_error=False,
    )
    failure = next(e for e in result.all_events if e.is_step_failure)
    line = step_failure_line(failure, result.run_id)
    assert line.endswith("day00.tif: not a TIFF file (starts with b'not ')") and "\n" not in line
    run = instance.get_run_by_id(result.run_id)
    context = dg.build_run_status_sensor_context(
        sensor_name="failure_summary_sensor",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    assert failure_summary_line(context) == f"FAILED m1/day00: {line} (run {result.run_id})"
    failure_summary_sensor(context)


REAL_LAYERS = sorted((shared_data_root() / "real_layers").glob("*.png"))


@pytest.mark.skipif(not REAL_LAYERS, reason="../shared/data/real_layers absent")
@pytest.mark.parametrize("shift, rotation", [((56.0, -57.0), 1.4), ((-30.0, 20.0), -0.8)])
def test_a_real_in_vivo_layer_moved_80_px_and_rotated_aligns(shift, rotation):
    """Real texture (dendrites, axons, background) displaced as between two sessions, with fresh shot noise."""
    from synapflow_assets.tracking.rigid import rigid_map, warp_to_moving

    image = np.asarray(Image.open(REAL_LAYERS[0]), dtype=np.float32)
    image = image[..., :3].max(-1) if image.ndim == 3 else image
    rng = np.random.default_rng(0)
    earlier = rng.poisson(image + 2).astype(np.float32)
    later = rng.poisson(np.clip(warp_to_moving(image, rotation, shift), 0, None) + 2).astype(np.float32)
    step = align_sessions(earlier[None], later[None])
    points = np.stack(np.meshgrid(np.arange(150, 360, 30), np.arange(150, 360, 30), indexing="ij"), -1).reshape(-1, 2)
    error = np.hypot(
        *(step.map_points(points) - rigid_map(points.astype(float), rotation, shift, image.shape)).T
    ).mean()
    print(
        f"trusted {step.trusted_blocks:.2f} of {step.structure_blocks} blocks holding structure, error {error:.2f} px"
    )
    assert step.ok and error < 0.5
