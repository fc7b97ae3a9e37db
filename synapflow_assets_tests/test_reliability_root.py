"""Reliability, one root one history: a copied data root gets its own history, a moved one keeps its own, and
nothing is created outside the root given; `--data` refuses a root that does not exist."""

import shutil

import dagster as dg
import pytest
import yaml

from synapflow_assets.defs.instance import open_instance
from synapflow_assets.defs.resources import DataLake
from synapflow_assets.pipeline import process_landed

from .test_reliability import IMPORTED, _moved_animal, land


def _raw_volume_events(root) -> int:
    with open_instance(root) as instance:
        return len(
            instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_volume")), limit=1000
            ).records
        )


def _ingest(root):
    with open_instance(root) as instance:
        return process_landed(instance, DataLake(root=str(root)), detection=IMPORTED)


def test_reliability_a_copied_root_has_its_own_history_and_a_moved_one_keeps_it(tmp_path):
    first, copy, moved = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    land(first, sessions=1)
    assert not _ingest(first).failed
    before = _raw_volume_events(first)
    shutil.copytree(first, copy, symlinks=True)  # cp -a
    _moved_animal(copy, "m2")
    report = _ingest(copy)
    assert [m.split(" ")[0] for m in report.materialized] == ["m2/day00", "m2"] and not report.failed
    storage = yaml.safe_load((copy / "dagster" / "dagster.yaml").read_text())["storage"]["sqlite"]["base_dir"]
    assert storage == str((copy / "dagster" / "storage").resolve())
    assert _raw_volume_events(first) == before  # the copy's runs are not in the original's history
    assert _raw_volume_events(copy) == before + 1
    again = _ingest(first)
    assert again.materialized == [] and again.up_to_date == ["m1/day00", "m1"], again  # nothing "damaged"

    shutil.move(first, moved)  # mv
    report = _ingest(moved)
    assert report.materialized == [] and report.up_to_date == ["m1/day00", "m1"], report  # history kept
    assert _raw_volume_events(moved) == before
    assert not first.exists()  # nothing recreated at the old place
    print(
        f"\ncp -a then ingest in the copy | original history unchanged ({before} raw_volume events), copy +1"
        "\nmv then ingest | history kept, nothing recomputed, nothing created at the old path"
    )


@pytest.mark.parametrize("case", ["missing", "a file", "a typo"])
def test_reliability_data_must_name_an_existing_root(tmp_path, capsys, case):
    from synapflow_assets.__main__ import main

    real = tmp_path / "data"
    land(real, sessions=1)
    target = {
        "missing": tmp_path / "nothing",
        "a file": real / "landing" / "m1" / "day00.tif",
        "a typo": tmp_path / "dta",
    }[case]
    assert main(["ingest", "--data", str(target), "--source", "imported"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    print(f"\n--data {case} | {err}")
    assert len(err) == 1 and str(target) in err[0], err
    assert not (target / "dagster").exists() and (target.is_file() or not target.exists())


def test_reliability_create_starts_a_new_root(tmp_path, capsys):
    from synapflow_assets.__main__ import main

    assert main(["ingest", "--data", str(tmp_path / "new"), "--create", "--source", "imported"]) == 0
    assert (tmp_path / "new" / "dagster" / "dagster.yaml").exists()


IMPORTED_ROWS = {
    "score 7.5": ("mushroom", "7.5", "score 7.5 not in [0, 1]"),
    "score -1": ("thin", "-1", "score -1.0 not in [0, 1]"),
    "score NaN": ("thin", "nan", "score nan not in [0, 1]"),
    "score inf": ("stubby", "inf", "score inf not in [0, 1]"),
    "HTML class": ("<img src=x onerror=alert(1)>", "0.5", "unknown class '<img src=x onerror=alert(1)>'"),
}


def test_reliability_imported_detections_are_validated(tmp_path):
    root = tmp_path / "data"
    land(root, "good", sessions=1)
    for case, (kind, score, _) in IMPORTED_ROWS.items():
        csv = _moved_animal(root, case.replace(" ", "-").lower()) / "day00.detections.csv"
        lines = csv.read_text().splitlines()
        csv.write_text("\n".join([*lines[:2], f"day00_layer01.png,192,192,{kind},{score},10,10,20,20", *lines[2:]]))
    report = _ingest(root)
    print("\nimported row | outcome")
    for case, (_, _, phrase) in IMPORTED_ROWS.items():
        message = report.failed.get(f"{case.replace(' ', '-').lower()}/day00", "")
        print(f"{case} | {message[message.index('day00.detections.csv') :] if message else None}")
        assert "day00.detections.csv" in message and phrase in message and "\n" not in message, (case, message)
    assert [m.split(" ")[0] for m in report.materialized] == ["good/day00", "good"]
    assert not (root / "detections" / "score-7.5").exists()  # nothing written for a refused file


def test_reliability_a_full_disk_is_one_line(tmp_path, capsys):
    from synapflow_assets.__main__ import main

    root = tmp_path / "data"
    land(root, sessions=1)
    assert not _ingest(root).failed
    store = str(root / "features.duckdb")
    assert main(["sql", "SELECT * FROM spines", "--store", store, "--format", "csv", "--out", "/dev/full"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    print(f"\nresult written to a full disk | {err}")
    assert len(err) == 1 and err[0].startswith("error: disk full"), err


def test_an_instance_of_ours_shows_no_newsletter_pop_up(tmp_path):
    from synapflow_assets.defs.instance import open_instance

    with open_instance(tmp_path / "lab"):
        pass
    assert (tmp_path / "lab" / "dagster" / ".nux" / "nux.yaml").read_text() == "seen: 1\n"
