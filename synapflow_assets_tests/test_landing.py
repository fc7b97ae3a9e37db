import os
import time
from datetime import datetime

import pytest

from synapflow_assets.imaging.errors import InputError
from synapflow_assets.imaging.keys import InvalidKeyError, order_sessions, validate_key
from synapflow_assets.imaging.landing import (
    SETTLE_SECONDS,
    find_session_input,
    is_complete,
    scan_landing,
    settled_sessions,
)


def settle(path, seconds=3600):
    """Age a file as if it was written `seconds` ago."""
    past = time.time() - seconds
    os.utime(path, (past, past))


@pytest.mark.parametrize(
    "key", ["a|b", "a,b", "a[1]", "x]", "a/b", "..", "a..b", "", " day1", "day 1", "-x", "a" * 65, "a\\b"]
)
def test_unsafe_keys_are_rejected(key):
    with pytest.raises(InvalidKeyError, match="invalid session"):
        validate_key(key, "session")


@pytest.mark.parametrize("key", ["day00", "2026-01-04", "mouse_01.b", "A"])
def test_safe_keys_pass(key):
    assert validate_key(key) == key


def test_sessions_order_by_acquisition_else_naturally():
    assert order_sessions({"day10": None, "day2": None, "day1": None}) == ["day1", "day2", "day10"]
    dates = {"b": datetime(2026, 1, 9), "a": datetime(2026, 1, 12), "c": datetime(2026, 1, 1)}
    assert order_sessions(dates) == ["c", "b", "a"]
    assert order_sessions({"b": datetime(2026, 1, 9), "a": None}) == ["a", "b"]


def touch(path, content=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_scan_finds_tiffs_and_png_folders_and_reports_bad_names(tmp_path):
    touch(tmp_path / "m1" / "day00.tif")
    touch(tmp_path / "m1" / "day04.ome.tiff")
    touch(tmp_path / "m1" / "day08" / "s_layer01.png")
    touch(tmp_path / "m1" / "day00.boxes.csv")
    touch(tmp_path / "m1" / ".day12.tif.tmp")
    touch(tmp_path / "m1" / "bad,name.tif")
    touch(tmp_path / "m 2" / "day00.tif")
    sessions, problems = scan_landing(tmp_path)
    assert [(s.animal, s.session) for s in sessions] == [("m1", "day00"), ("m1", "day04"), ("m1", "day08")]
    assert len(problems) == 2 and any("bad,name.tif" in p for p in problems) and any("m 2" in p for p in problems)
    assert find_session_input(tmp_path, "m1", "day08") == tmp_path / "m1" / "day08"
    with pytest.raises(InputError, match="no input for animal 'm1' session 'day99'"):
        find_session_input(tmp_path, "m1", "day99")


def test_settled_sessions_wait_for_stable_files_and_rerequest_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNAPFLOW_SETTLE_SECONDS", "10")
    path = touch(tmp_path / "m1" / "day00.tif", b"partial")
    state = {}
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert ready == []  # just written
    settle(path)
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert [r.session for r in ready] == ["day00"]
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert ready == []
    path.write_bytes(b"new content, longer")
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert ready == []
    settle(path)
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert [r.session for r in ready] == ["day00"]


def test_ingest_and_the_sensor_share_one_completeness_rule(tmp_path):
    touch(tmp_path / "m1" / "day00.tif", b"partial")
    item = scan_landing(tmp_path)[0][0]
    assert not is_complete(item, settle=SETTLE_SECONDS) and is_complete(
        item, settle=SETTLE_SECONDS, now=item.modified + SETTLE_SECONDS
    )
    touch(tmp_path / "m1" / "day00.done", b"")
    assert is_complete(item)


def test_done_marker_makes_a_file_ready_at_once(tmp_path):
    touch(tmp_path / "m1" / "day00.tif")
    touch(tmp_path / "m1" / "day00.done", b"")
    ready, _ = settled_sessions(scan_landing(tmp_path)[0], {})
    assert [r.session for r in ready] == ["day00"]


def test_ingest_leaves_a_session_that_is_still_being_written(tmp_path, monkeypatch):
    import dagster as dg

    from synapflow_assets.defs.resources import DataLake, DetectionSettings
    from synapflow_assets.pipeline import process_landed

    from .conftest import write_stack

    monkeypatch.setenv("SYNAPFLOW_SETTLE_SECONDS", "10")
    folder = tmp_path / "landing" / "m1" / "day00"
    stack = write_stack(tmp_path / "whole.tif", layers=6)
    from PIL import Image

    folder.mkdir(parents=True)
    for layer in range(3):  # 3 of 6 layers copied so far
        Image.fromarray(stack[layer]).save(folder / f"s_layer{layer:02d}.png")
    with dg.instance_for_test() as instance:
        report = process_landed(instance, DataLake(root=str(tmp_path)), detection=DetectionSettings(source="baseline"))
        assert report.materialized == [] and report.failed == {}
        assert report.waiting[0].startswith("m1/day00: still being written") and "day00.done" in report.waiting[0]
        assert not (tmp_path / "volumes" / "m1" / "day00.ome.zarr").exists()
        for layer in range(3, 6):
            Image.fromarray(stack[layer]).save(folder / f"s_layer{layer:02d}.png")
        (folder.parent / "day00.done").touch()
        report = process_landed(instance, DataLake(root=str(tmp_path)), detection=DetectionSettings(source="baseline"))
        assert report.waiting == [] and report.materialized[0].startswith("m1/day00 (raw_volume")
        assert (
            instance.get_latest_materialization_event(dg.AssetKey("raw_volume"))
            .asset_materialization.metadata["shape_zyx"]
            .value[0]
            == 6
        )


def test_a_single_png_is_a_session_and_a_stray_layer_png_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNAPFLOW_SETTLE_SECONDS", "10")
    touch(tmp_path / "m1" / "day00.tif")
    png = touch(tmp_path / "m1" / "day04.png")
    touch(tmp_path / "m1" / "day08.PNG")
    touch(tmp_path / "m1" / "x_layer03.png")  # one layer of a folder stack, copied beside the sessions
    touch(tmp_path / "m1" / "day04.detections.csv", b"filename\n")
    sessions, problems = scan_landing(tmp_path)
    assert [(s.session, s.path.name) for s in sessions] == [
        ("day00", "day00.tif"),
        ("day04", "day04.png"),
        ("day08", "day08.PNG"),
    ]
    assert (
        len(problems) == 1 and "x_layer03.png" in problems[0] and "PNG layer outside its session folder" in problems[0]
    )
    assert find_session_input(tmp_path, "m1", "day04") == png
    day04 = sessions[1]
    assert day04.fingerprint.startswith("2:")  # the PNG and its detections CSV
    assert day04.done_marker == tmp_path / "m1" / "day04.done"
    assert not is_complete(day04) and is_complete(day04, now=day04.modified + 10)
    touch(tmp_path / "m1" / "day04.done", b"")
    assert is_complete(day04)
    touch(tmp_path / "m1" / "day00.png")
    with pytest.raises(InputError, match=r"several inputs for one session: day00\.png, day00\.tif"):
        find_session_input(tmp_path, "m1", "day00")
