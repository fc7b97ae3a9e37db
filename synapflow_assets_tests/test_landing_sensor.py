import json
import os
import time

import dagster as dg

from synapflow_assets.defs.landing_sensor import landing_sensor
from synapflow_assets.defs.partitions import ANIMALS, SESSIONS
from synapflow_assets.defs.resources import DataLake, DetectionSettings, ImagingSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

from .conftest import write_stack


def tick(instance, lake, cursor, detection=DetectionSettings()):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": lake, "detection": detection, "imaging": ImagingSettings()}
    )
    result = landing_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def settle(path, seconds=3600):
    """Age a file as if it was written `seconds` ago."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_sensor_adds_partitions_for_complete_files_and_rerequests_changes(tmp_path, instance, monkeypatch):
    monkeypatch.setenv("SYNAPFLOW_SETTLE_SECONDS", "10")
    lake = DataLake(root=str(tmp_path))
    m1, m2 = tmp_path / "landing" / "m1" / "day00.tif", tmp_path / "landing" / "m2" / "day00.tif"
    write_stack(m1)
    first = tick(instance, lake, None)
    assert first.run_requests == []  # still being written, as far as anyone can tell

    settle(m1)
    write_stack(m2, seed=3)
    second = tick(instance, lake, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["m1/day00"]
    assert instance.get_dynamic_partitions(ANIMALS.name) == ["m1"]
    assert instance.get_dynamic_partitions(SESSIONS.name) == ["m1/day00"]

    settle(m2)
    third = tick(instance, lake, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["m2/day00"]
    assert instance.get_dynamic_partitions(ANIMALS.name) == ["m1", "m2"]
    assert instance.get_dynamic_partitions(SESSIONS.name) == ["m1/day00", "m2/day00"]  # no m1 x m2 cross product
    assert tick(instance, lake, third.cursor).run_requests == []

    write_stack(m1, seed=7, layers=7)
    growing = tick(instance, lake, third.cursor)
    assert growing.run_requests == []
    settle(m1)
    again = tick(instance, lake, growing.cursor)
    assert [r.partition_key for r in again.run_requests] == ["m1/day00"]
    assert again.run_requests[0].run_key != second.run_requests[0].run_key


def test_sensor_restarts_from_its_cursor_and_skips_bad_names(tmp_path, instance):
    lake = DataLake(root=str(tmp_path))
    write_stack(tmp_path / "landing" / "m1" / "day00.tif")
    (tmp_path / "landing" / "m1" / "day00.done").touch()
    write_stack(tmp_path / "landing" / "m1" / "bad|name.tif")
    first = tick(instance, lake, None)
    assert [r.partition_key for r in first.run_requests] == ["m1/day00"]
    assert "bad|name" not in json.dumps(json.loads(first.cursor))
    assert tick(instance, lake, first.cursor).run_requests == []


def test_new_detections_csv_rerequests_the_session(tmp_path, instance, monkeypatch):
    monkeypatch.setenv("SYNAPFLOW_SETTLE_SECONDS", "10")
    lake = DataLake(root=str(tmp_path))
    write_stack(tmp_path / "landing" / "m1" / "day00.tif")
    settle(tmp_path / "landing" / "m1" / "day00.tif")
    first = tick(instance, lake, None)
    assert [r.partition_key for r in first.run_requests] == ["m1/day00"]
    csv = tmp_path / "landing" / "m1" / "day00.detections.csv"
    csv.write_text("filename,width,height,class,score,xmin,ymin,xmax,ymax\n")
    waiting = tick(instance, lake, first.cursor)
    assert waiting.run_requests == []
    settle(csv)
    assert [r.partition_key for r in tick(instance, lake, waiting.cursor).run_requests] == ["m1/day00"]


def test_sessions_already_ingested_are_not_requested_again(tmp_path, instance):
    imported = DetectionSettings(source="imported")
    sims = simulate_animal(SimulationParams(shape=(8, 128, 128)), n_sessions=2, seed=2)
    write_session(sims[0], tmp_path / "landing", "m1", "day00")
    lake = DataLake(root=str(tmp_path))
    assert not process_landed(instance, lake, detection=imported).failed
    first = tick(instance, lake, None, imported)
    assert tick(instance, lake, first.cursor, imported).run_requests == []

    write_session(sims[1], tmp_path / "landing", "m1", "day04")  # with its .done marker: taken at the next tick
    requests = tick(instance, lake, first.cursor, imported).run_requests
    assert [r.partition_key for r in requests] == ["m1/day04"]
    assert {k.to_user_string() for k in requests[0].asset_selection} == {
        "raw_volume",
        "detections_2d",
        "spines_3d",
        "spine_features",
    }
