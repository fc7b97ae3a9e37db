import os
from datetime import datetime

import pytest

from synapflow_assets.imaging.errors import InputError
from synapflow_assets.imaging.keys import InvalidKeyError, order_sessions, validate_key
from synapflow_assets.imaging.landing import find_session_input, scan_landing, settled_sessions


@pytest.mark.parametrize("key", ["a|b", "a,b", "a[1]", "x]", "a/b", "..", "a..b", "", " day1", "day 1", "-x", "a" * 65, "a\\b"])
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


def test_settled_sessions_wait_for_stable_files_and_rerequest_changes(tmp_path):
    path = touch(tmp_path / "m1" / "day00.tif", b"partial")
    state = {}
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert ready == []
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert [r.session for r in ready] == ["day00"]
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert ready == []
    path.write_bytes(b"new content, longer")
    os.utime(path, ns=(1, 2_000_000_000))
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert ready == []
    ready, state = settled_sessions(scan_landing(tmp_path)[0], state)
    assert [r.session for r in ready] == ["day00"]


def test_done_marker_makes_a_file_ready_at_once(tmp_path):
    touch(tmp_path / "m1" / "day00.tif")
    touch(tmp_path / "m1" / "day00.done", b"")
    ready, _ = settled_sessions(scan_landing(tmp_path)[0], {})
    assert [r.session for r in ready] == ["day00"]
