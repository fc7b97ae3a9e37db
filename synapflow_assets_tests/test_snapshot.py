"""Citable snapshots: a read-only Parquet bundle with a manifest that a new session never changes."""

import hashlib
import json
import time

import polars as pl
import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import query
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session
from synapflow_assets.tools.snapshot import TABLES

IMPORTED = DetectionSettings(source="imported")


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_snapshot_is_frozen_byte_identical_and_says_what_it_holds(tmp_path, instance, capsys):
    lake = DataLake(root=str(tmp_path))
    sims = simulate_animal(SimulationParams(shape=(12, 160, 160)), n_sessions=3, seed=4)
    for sim in sims[:2]:
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    assert not process_landed(instance, lake, detection=IMPORTED).failed

    start = time.perf_counter()
    assert main(["snapshot", "--name", "paper-v1", "--data", str(tmp_path)]) == 0
    seconds = time.perf_counter() - start
    print(f"snapshot of 1 animal x 2 sessions: {seconds:.2f} s")
    folder = tmp_path / "snapshots" / "paper-v1"
    first = digest(folder)
    assert set(first) == {"manifest.json", "lineage.parquet", *(f"{t}.parquet" for t in TABLES)}
    assert all(not (p.stat().st_mode & 0o222) for p in [folder, *folder.iterdir()])  # read-only
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["animals"] == ["m1"] and manifest["tables"]["dynamics"]["rows"] == 2
    assert all(manifest["tables"][t]["sha256"] == first[f"{t}.parquet"] for t in TABLES)
    models = manifest["lineage"]["models"]
    assert models and all(m.startswith("imported:day0") and " version " in m for m in models)
    assert manifest["lineage"]["code_versions"]["dynamics"] and "alignment" in manifest["settings"]["m1"]
    stored = query(lake.store_path, "SELECT * FROM dynamics ORDER BY ALL")
    assert pl.read_parquet(folder / "dynamics.parquet").equals(stored)
    lineage = pl.read_parquet(folder / "lineage.parquet")
    assert set(lineage["table"]) == {"dynamics", "tracks", "spine_features", "sessions"}
    assert lineage["input_versions"].is_not_null().all() and seconds < 5

    assert main(["snapshot", "--name", "paper-v1", "--data", str(tmp_path)]) == 0  # rerun: same bytes, kept
    assert "unchanged" in capsys.readouterr().out and digest(folder) == first

    write_session(sims[2], tmp_path / "landing", "m1", "day08")
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    assert main(["snapshot", "--name", "paper-v1", "--data", str(tmp_path)]) == 2
    assert "frozen" in capsys.readouterr().err and digest(folder) == first
    assert main(["snapshot", "--name", "paper-v2", "--animal", "m1", "--data", str(tmp_path)]) == 0
    later = json.loads((tmp_path / "snapshots" / "paper-v2" / "manifest.json").read_text())
    assert later["tables"]["dynamics"]["rows"] == 3 and not list((tmp_path / "snapshots").glob(".*"))

    # a snapshot is queried by name, with the store's views, while the store has moved on
    store = str(tmp_path / "features.duckdb")
    count = "SELECT count(*) AS n FROM dynamics"
    capsys.readouterr()
    assert main(["sql", "--snapshot", "paper-v1", "--store", store, "--format", "csv", count]) == 0
    assert capsys.readouterr().out.split() == ["n", "2"]
    assert main(["sql", "--store", store, "--format", "csv", count]) == 0 and capsys.readouterr().out.split()[1] == "3"
    assert main(["sql", "--snapshot", "paper-v1", "--store", store, "SELECT count(*) FROM size_changes"]) == 0
    assert main(["sql", "--snapshot", "nope", "--store", store, count]) == 2
    assert "no snapshot 'nope'" in capsys.readouterr().err
    # a snapshot's report, saying what changed since another
    out = tmp_path / "v2.html"
    args = ["--out", str(out), "--data", str(tmp_path)]
    assert main(["report", "--snapshot", "paper-v2", "--since", "paper-v1", *args]) == 0
    page = out.read_text()
    assert "<h2>Changes since snapshot paper-v1</h2>" in page and "<li>m1/day08: added since paper-v1</li>" in page
    assert f"from snapshot paper-v2 of {tmp_path}" in page and "<h2>m1</h2>" in page
    assert main(["report", "--since", "paper-v1", *args]) == 2


@pytest.mark.parametrize("args", [["--name", "../escape"], ["--name", "ok", "--animal", "nobody"]])
def test_a_bad_name_or_animal_is_one_line(tmp_path, args, capsys):
    assert main(["snapshot", *args, "--data", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "snapshots" / "ok").exists()


def test_what_changed_between_two_snapshots_is_one_line_per_number(tmp_path):
    from synapflow_assets.tools.snapshot import SnapshotError
    from synapflow_assets.tools.snapshot_query import COMPARED, checked_manifest, snapshot_changes

    def bundle(name: str, n_in_view: list[int]) -> None:
        n = len(n_in_view)
        frame = pl.DataFrame(
            {"animal": ["m1"] * n, "session": [f"day{4 * i:02d}" for i in range(n)], "session_index": list(range(n))}
        ).with_columns(pl.lit(0.1).alias(c) for c in COMPARED)
        folder = tmp_path / "snapshots" / name
        folder.mkdir(parents=True)
        frame.with_columns(n_in_view=pl.Series(n_in_view)).write_parquet(folder / "dynamics.parquet")
        sha = hashlib.sha256((folder / "dynamics.parquet").read_bytes()).hexdigest()
        manifest = {"tables": {"dynamics": {"file": "dynamics.parquet", "rows": n, "sha256": sha}}}
        (folder / "manifest.json").write_text(json.dumps(manifest))

    bundle("v1", [79, 75])
    bundle("v2", [79, 77, 80])
    assert snapshot_changes(tmp_path, "v2", "v1") == ["m1/day08: added since v1", "m1/day04: n_in_view 75 -> 77"]
    assert snapshot_changes(tmp_path, "v1", "v1") == []
    (tmp_path / "snapshots" / "v1" / "dynamics.parquet").write_bytes(b"changed")
    with pytest.raises(SnapshotError, match=r"dynamics\.parquet is missing or differs from its manifest"):
        checked_manifest(tmp_path, "v1")
