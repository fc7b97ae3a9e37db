"""What a run leaves in the Dagster event log: pictures are files beside the outputs, linked from the metadata,
with only a small preview inline (`defs.metadata.picture_metadata`), so a run's event records stay small at
50,000 sessions; and a picture file is replaced by a rerun and removed with its partition, never accumulated."""

import base64
import io

import dagster as dg
import pytest
from PIL import Image

from synapflow_assets.defs.metadata import PREVIEW_BYTES
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

IMPORTED = DetectionSettings(source="imported")
SHAPE = (12, 256, 256)
SESSIONS = ["day00", "day04", "day08"]

MAX_RUN_BYTES = 110_000
"""The event records of one run (a session's four assets, or an animal's tracks and dynamics), serialized as the
event log stores them. Measured 83 kB (session run) and 99 kB (animal run): 119 kB and 137 kB while the metadata
went into both the step's output event and the materialization (`metadata.materialized` puts it in the
materialization only), 535 kB and 443 kB with the pictures inline. About 50 kB of it is Dagster's own events of
a run (planned, started, output, success, checks)."""

MAX_ENTRY_BYTES = 12_000
"""No one metadata entry beyond this (serialized): a preview of `PREVIEW_BYTES` in base64 and its title."""

SHOWN = {"spines_3d": "spines_on_projection", "spine_tracks": "last_two_sessions", "spine_dynamics": "dynamics_plot"}
"""The previews the UI shows (`test_web_ui`); their full pictures are linked under `<name>_file`."""

LINKED = {"raw_volume": "mip", "detections_2d": "detections_on_projection"}
"""Pictures linked without a preview."""


def _run_bytes(instance: dg.DagsterInstance) -> dict[str, int]:
    """Serialized bytes of the event records of each run, by job and partition."""
    return {
        f"{run.dagster_run.job_name} {run.dagster_run.tags.get('dagster/partition')}": sum(
            len(dg.serialize_value(record)) for record in instance.all_logs(run.dagster_run.run_id)
        )
        for run in instance.get_run_records()
    }


def _latest(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    only = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition])
    materialization = instance.fetch_materializations(only, limit=1).records[0].asset_materialization
    assert materialization is not None
    return dict(materialization.metadata)


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        picture.load()
        return picture.size


def _pictures(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png") if "landing" not in p.parts)


@pytest.fixture
def lab(tmp_path, instance):
    for sim in simulate_animal(SimulationParams(shape=SHAPE), n_sessions=len(SESSIONS), seed=3):
        write_session(sim, tmp_path / "landing", "m1", SESSIONS[sim.index])
    lake = DataLake(root=str(tmp_path))
    report = process_landed(instance, lake, detection=IMPORTED)
    assert not report.failed, report.failed
    return lake


def test_each_run_keeps_a_small_event_log_and_links_its_pictures_as_files(lab, instance, tmp_path):
    sizes = _run_bytes(instance)
    for run in instance.get_run_records():
        for record in instance.all_logs(run.dagster_run.run_id):
            event = record.dagster_event
            if event is not None and event.is_successful_output:
                assert not event.step_output_data.metadata, "metadata in the output event too"
    print("\nevent-log bytes per run:", sizes)
    assert len(sizes) == len(SESSIONS) + 1
    assert all(size <= MAX_RUN_BYTES for size in sizes.values()), sizes
    for run in instance.get_run_records():
        for record in instance.all_logs(run.dagster_run.run_id):
            event = record.dagster_event
            if event is not None and event.is_step_materialization:
                metadata = event.step_materialization_data.materialization.metadata
                big = {k: n for k, v in metadata.items() if (n := len(dg.serialize_value(v))) > MAX_ENTRY_BYTES}
                assert not big, big

    _, y, x = SHAPE
    for asset, name in SHOWN.items():
        metadata = _latest(instance, asset, "m1" if asset != "spines_3d" else "m1/day04")
        shown, link = metadata[name].value, metadata[f"{name}_file"]
        kind, data = shown.split("](data:", 1)[1].rstrip(")").split(";base64,")
        preview = base64.b64decode(data)
        assert kind in ("image/png", "image/jpeg") and len(preview) <= PREVIEW_BYTES
        assert isinstance(link, dg.PathMetadataValue)
        width, height = _png_size(link.value)
        with Image.open(io.BytesIO(preview)) as small:
            print(f"{name}: preview {small.size} {kind} {len(preview)} bytes, file {width}x{height}")
            if asset == "spine_dynamics":
                assert small.size == (width, height) and width > 400 and height > 150  # the plot, every pixel
            else:
                assert small.width == min(width, 256)
        if asset == "spines_3d":
            assert (width, height) == (x, y)
        if asset == "spine_tracks":
            assert width == x and height > y  # the legend below
    trajectories = _latest(instance, "spine_dynamics", "m1")["size_trajectories_file"].value
    assert _png_size(trajectories)[0] > 300
    for asset, name in LINKED.items():
        link = _latest(instance, asset, "m1/day00")[name]
        assert isinstance(link, dg.PathMetadataValue) and _png_size(link.value) == (x, y)


def test_a_picture_is_replaced_by_a_rerun_and_removed_with_its_partition(lab, instance, tmp_path):
    pictures = _pictures(tmp_path)
    per_session = ["detections/m1/{}.detections_on_projection.png", "spines/m1/{}.spines_on_projection.png"]
    per_session.append("volumes/m1/{}.mip.png")
    per_animal = [f"tracks/m1.{name}.png" for name in ("dynamics_plot", "last_two_sessions", "size_trajectories")]
    assert pictures == sorted([p.format(s) for p in per_session for s in SESSIONS] + per_animal)

    overlay = tmp_path / "tracks" / "m1.last_two_sessions.png"
    before = overlay.read_bytes()
    for path in (tmp_path / "landing" / "m1").glob("day08*"):
        path.unlink()
    report = process_landed(instance, lab, detection=IMPORTED, drop_removed=True)
    assert not report.failed and report.materialized == ["m1 (spine_tracks, spine_dynamics)"], report
    assert _pictures(tmp_path) == sorted([p.format(s) for p in per_session for s in SESSIONS[:2]] + per_animal)
    assert overlay.read_bytes() != before  # day00 -> day04 now, in place of day04 -> day08
    assert not list(tmp_path.rglob(".*.tmp-*"))  # no write left half done
    assert _latest(instance, "spine_tracks", "m1")["last_two_sessions_file"].value == str(overlay)
