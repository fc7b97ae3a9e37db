"""The reliability suite: bad inputs, damaged derived data, kill -9 mid-materialization, concurrent commands.

Every case runs the real command path (`process_landed`, or `python -m
synapflow_assets ingest` in a subprocess) on real files. Each test prints its
(case, outcome) rows; `pytest -s -k reliability` shows the table.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from synapflow_assets.defs.instance import open_instance
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.failpoints import POINTS
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import StoreError, query
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

from .test_bad_inputs import CASES

IMPORTED = DetectionSettings(source="imported")
TABLES = ("sessions", "detections", "spines", "spine_features", "tracks", "dynamics")
ROOT = Path(__file__).resolve().parents[1]


def land(root: Path, animal: str = "m1", sessions: int = 2, seed: int = 3) -> None:
    """A simulated animal with imported boxes and `.done` markers."""
    for sim in simulate_animal(SimulationParams(shape=(6, 192, 192)), n_sessions=sessions, seed=seed):
        write_session(sim, root / "landing", animal, f"day{4 * sim.index:02d}")


def counts(root: Path) -> dict[str, int]:
    return {t: query(root / "features.duckdb", f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}


def temporaries(root: Path) -> list[Path]:
    return [
        p for level in ("*/.*", "*/*/.*", "*/*/*/.*") for p in root.glob(level) if "tmp-" in p.name or "old-" in p.name
    ]


def ingest(root: Path, *extra: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root), "--source", "imported", *extra],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Row counts of a clean run of the lab used by the crash tests."""
    root = tmp_path_factory.mktemp("clean")
    land(root)
    with open_instance(root) as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=IMPORTED)
    assert not report.failed, report.failed
    return counts(root)


# --- bad inputs: each fails its own partition with one line naming the file; the good animal is processed


def _into_landing(case: str, source: Path, landing: Path) -> Path | None:
    """Put a bad input of test_bad_inputs into the landing folder as session day00 of its own animal;
    None for a case that needs a reader option the landing folder does not give (max_layers, channel, ...)."""
    path, _, _, options = CASES[case](source)
    if options or not path.exists():
        return None
    animal = landing / f"bad-{case.replace('_', '-')}"
    animal.mkdir(parents=True)
    suffix = "" if path.is_dir() else (".ome.tif" if path.name.endswith(".ome.tif") else path.suffix)
    target = animal / f"day00{suffix}"
    shutil.move(path, target)
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        shutil.move(sidecar, animal / "day00.json")
    return target


def _moved_animal(root: Path, animal: str) -> Path:
    """One simulated session of `animal`, moved into the landing folder of `root`."""
    land(root / f"src-{animal}", animal, sessions=1)
    shutil.move(root / f"src-{animal}" / "landing" / animal, root / "landing" / animal)
    shutil.rmtree(root / f"src-{animal}")
    return root / "landing" / animal


ACCEPTED = {"png_none": "an empty folder is not a session yet (a copy may be starting); nothing is registered"}


def test_reliability_bad_inputs_fail_only_their_partition(tmp_path):
    root, source = tmp_path / "data", tmp_path / "source"
    land(root, "good", sessions=2)
    placed = {}
    for case in sorted(CASES):
        (source / case).mkdir(parents=True)
        if (target := _into_landing(case, source / case, root / "landing")) is not None:
            placed[case] = target
    extra = root / "landing" / "good" / "extras"
    extra.mkdir()
    shutil.copy(root / "landing" / "good" / "day00.tif", extra / "overview.png")
    (root / "landing" / "good" / "bad|name.tif").write_bytes(b"x")
    typo = _moved_animal(root, "settings-typo")
    (typo / "synapflow.yaml").write_text("alignment:\n  min_trusted_blokcs: 0.5\n")
    for animal, row in {
        "csv-outside": "day00_layer00.png,192,192,mushroom,0.9,5000,5000,5010,5010",
        "csv-nan": "day00_layer00.png,192,192,mushroom,0.9,nan,4,9,9",
        "csv-columns": "day00_layer00.png,mushroom,0.9",
    }.items():
        csv = _moved_animal(root, animal) / "day00.detections.csv"
        csv.write_text(csv.read_text().splitlines()[0] + "\n" + row + "\n")

    with open_instance(root) as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=IMPORTED)
    rows = []
    for case, target in placed.items():
        key = f"{target.parent.name}/day00"
        outcome = report.failed.get(key) or next(
            (w for w in report.warnings + report.skipped if w.startswith(key) or str(target) in w), None
        )
        if case in ACCEPTED and outcome is None:
            rows.append((case, f"accepted: {ACCEPTED[case]}"))
            continue
        rows.append((case, outcome))
        assert outcome is not None and "day00" in outcome and "\n" not in outcome, (case, outcome)
    for key, phrase in (
        ("good/extras", "no PNG layers"),
        ("settings-typo/day00", "min_trusted_blokcs"),
        ("csv-outside/day00", "outside"),
        ("csv-nan/day00", "day00.detections.csv"),
        ("csv-columns/day00", "day00.detections.csv"),
    ):
        rows.append((key, report.failed.get(key)))
        assert phrase in (report.failed.get(key) or ""), (key, report.failed.get(key))
    assert any("bad|name.tif" in p for p in report.skipped)
    rows.append(("bad|name.tif", next(p for p in report.skipped if "bad|name.tif" in p)))
    assert [m.split(" ")[0] for m in report.materialized if m.startswith("good/")] == ["good/day00", "good/day04"]
    assert "good" in report.failed  # it has the stray folder 'extras': its tracks wait, and say so
    print("\ncase | outcome")
    for case, outcome in rows:
        print(f"{case} | {outcome}")
    assert len(rows) >= 30


# --- damaged derived data: found and recomputed, with the same numbers

DAMAGE = {
    "volume chunk deleted": lambda r: next(
        p for p in (r / "volumes" / "m1" / "day04.ome.zarr" / "0" / "c").rglob("*") if p.is_file()
    ).unlink(),
    "volume chunk corrupt": lambda r: next(
        p for p in (r / "volumes" / "m1" / "day04.ome.zarr" / "0" / "c").rglob("*") if p.is_file()
    ).write_bytes(b"garbage"),
    "volume deleted": lambda r: shutil.rmtree(r / "volumes" / "m1" / "day00.ome.zarr"),
    "detections deleted": lambda r: (r / "detections" / "m1" / "day04.parquet").unlink(),
    "detections truncated": lambda r: (r / "detections" / "m1" / "day00.parquet").write_bytes(
        (r / "detections" / "m1" / "day00.parquet").read_bytes()[:100]
    ),
    "spines altered": lambda r: (
        pl.read_parquet(r / "spines" / "m1" / "day00.parquet")
        .head(3)
        .write_parquet(r / "spines" / "m1" / "day00.parquet")
    ),
    "tracks deleted": lambda r: (r / "tracks" / "m1.parquet").unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_reliability_damaged_outputs_are_recomputed(tmp_path, clean, damage):
    root = tmp_path / "data"
    land(root)
    with open_instance(root) as instance:
        lake = DataLake(root=str(root))
        assert not process_landed(instance, lake, detection=IMPORTED).failed
        DAMAGE[damage](root)
        report = process_landed(instance, lake, detection=IMPORTED)
    print(f"\n{damage} | {report.warnings[:1] or report.materialized}")
    assert report.failed == {} and report.materialized, (damage, report)
    assert counts(root) == clean


def test_reliability_a_missing_chunk_is_an_error_not_zeros(tmp_path):
    from synapflow_assets.imaging.errors import InputError
    from synapflow_assets.imaging.ome_zarr import read_volume_zarr, volume_problem, write_volume

    path = write_volume(tmp_path / "v.ome.zarr", np.zeros((4, 64, 64), np.uint16), (1.0, 0.1, 0.1))
    assert volume_problem(path) is None and read_volume_zarr(path)[0].shape == (4, 64, 64)  # zeros, stored
    next(p for p in (path / "0" / "c").rglob("*") if p.is_file()).unlink()
    assert "1 of" in volume_problem(path)
    with pytest.raises(InputError, match="damaged volume: 1 of"):
        read_volume_zarr(path)


# --- kill -9 at five points: the rerun finishes alone with the clean numbers and no temporaries


@pytest.mark.parametrize("point", POINTS)
def test_reliability_kill_9_then_rerun(tmp_path, clean, point):
    root = tmp_path / "data"
    land(root)
    killed = ingest(root, env={"SYNAPFLOW_FAILPOINT": point})
    assert killed.returncode == -9, (point, killed.stdout[-500:], killed.stderr[-500:])
    start = time.monotonic()
    rerun = ingest(root, timeout=120)
    seconds = time.monotonic() - start
    print(f"\nkill -9 at {point} | rerun exit {rerun.returncode} in {seconds:.0f} s")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert counts(root) == clean
    assert temporaries(root) == []
    with open_instance(root) as instance:
        unfinished = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert unfinished == []
        assert instance.event_log_storage.get_concurrency_run_ids() == set()


# --- concurrent commands


def test_reliability_two_ingests_at_once_process_each_partition_once(tmp_path):
    root = tmp_path / "data"
    land(root)
    command = [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root), "--source", "imported"]
    first, second = (
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    )
    outputs = [p.communicate(timeout=240) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert any("waiting for another ingest" in out for out, _ in outputs)
    with open_instance(root) as instance:
        for partition in ("m1/day00", "m1/day04"):
            events = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_volume"), asset_partitions=[partition]), limit=10
            ).records
            assert len(events) == 1, partition


def test_reliability_sql_readers_during_an_ingest(tmp_path, clean):
    root = tmp_path / "data"
    land(root)
    store = root / "features.duckdb"
    done, reads, failures = threading.Event(), [0] * 4, []

    def reader(index: int) -> None:
        while not done.is_set():
            if store.exists():
                try:
                    query(store, "SELECT count(*) AS n FROM spine_features")
                    reads[index] += 1
                except StoreError as error:
                    if "no feature store yet" not in str(error):
                        failures.append(str(error))
                except Exception as error:
                    failures.append(f"{type(error).__name__}: {error}")
            time.sleep(0.05)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        run = ingest(root)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    print(f"\n4 sql readers during ingest | {sum(reads)} reads, {len(failures)} failed; ingest exit {run.returncode}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert failures == [] and sum(reads) > 0
    assert counts(root) == clean


def test_reliability_a_corrupt_store_is_one_line_with_how_to_rebuild(tmp_path):
    root = tmp_path / "data"
    land(root, sessions=1)
    (root / "features.duckdb").write_bytes(b"not a database" * 100)
    run = ingest(root)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a readable feature store" in lines[0] and "move it aside" in lines[0], run.stderr
    assert "delete it" not in run.stderr


def test_reliability_an_escaping_partition_key_writes_nothing_outside(tmp_path, instance):
    from synapflow_assets.defs.partitions import ANIMALS
    from synapflow_assets.defs.resources import AlignmentSettings
    from synapflow_assets.defs.track_assets import spine_tracks

    evil = "../../escaped/evil"
    instance.add_dynamic_partitions(ANIMALS.name, [evil])
    root = tmp_path / "a" / "b" / "data"
    result = dg.materialize(
        [spine_tracks],
        instance=instance,
        partition_key=evil,
        raise_on_error=False,
        resources={"lake": DataLake(root=str(root)), "alignment": AlignmentSettings()},
    )
    assert not result.success
    assert not (tmp_path / "a" / "escaped").exists() and not (tmp_path / "escaped").exists()


def test_reliability_dynamics_refuse_an_animal_with_a_session_without_features(tmp_path):
    import duckdb

    from synapflow_assets.defs.feature_assets import spine_dynamics
    from synapflow_assets.defs.graph import update_animals_job
    from synapflow_assets.defs.run_messages import failure_message
    from synapflow_assets.pipeline import run_job

    root = tmp_path / "data"
    land(root)
    lake = DataLake(root=str(root))
    with open_instance(root) as instance:
        assert not process_landed(instance, lake, detection=IMPORTED).failed
        before = counts(root)
        with duckdb.connect(str(root / "features.duckdb")) as connection:
            for table in ("spine_features", "sessions"):
                connection.execute(f"DELETE FROM {table} WHERE session = 'day04'")
        result = run_job(update_animals_job, instance, "m1", [spine_dynamics.key], {"lake": lake})
        assert not result.success
        assert failure_message(result).startswith("m1: no features yet for session day04 (still running, or failed)")
    assert counts(root)["dynamics"] == before["dynamics"]  # nothing written


def test_reliability_a_corrupt_registry_is_one_line(tmp_path, capsys):
    from synapflow_assets.__main__ import main

    root = tmp_path / "data"
    land(root, sessions=1)
    (root / "mlflow").mkdir(parents=True)
    (root / "mlflow" / "mlflow.db").write_bytes(os.urandom(4096))
    assert (
        main(
            [
                "detect",
                str(root / "landing" / "m1" / "day00.tif"),
                "--out",
                str(tmp_path / "b.csv"),
                "--data-root",
                str(root),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mlflow.db: not a readable MLflow database" in err[0] and "Traceback" not in err[0]
    with open_instance(root) as instance:
        report = process_landed(instance, DataLake(root=str(root)))
    assert "not a readable MLflow database" in report.failed["spine_detector"]
    assert all("\n" not in line for line in report.failed.values())


@pytest.mark.parametrize("schema", ["CREATE TABLE spines (id INTEGER)", "CREATE TABLE experiments (x INTEGER)"])
def test_reliability_a_registry_of_another_schema_is_one_line(tmp_path, schema):
    import sqlite3

    from synapflow_assets.detection.lifecycle import RegistryError, ensure_champion

    root = tmp_path / "data"
    (root / "mlflow").mkdir(parents=True)
    with sqlite3.connect(root / "mlflow" / "mlflow.db") as connection:
        connection.execute(schema)
    with pytest.raises(RegistryError, match=r"not a readable MLflow database .*are not MLflow's") as error:
        ensure_champion(root)
    assert "\n" not in str(error.value)


def test_reliability_one_data_root_one_instance(tmp_path):
    import yaml

    from synapflow_assets.defs.instance import TEMPLATE, instance_home

    first, second = tmp_path / "a", tmp_path / "b"
    land(first)
    shutil.copytree(first / "landing", second / "landing")
    with open_instance(first) as instance:
        assert not process_landed(instance, DataLake(root=str(first)), detection=IMPORTED).failed
    with open_instance(second) as instance:
        report = process_landed(instance, DataLake(root=str(second)), detection=IMPORTED)
        assert [m.split(" ")[0] for m in report.materialized] == ["m1/day00", "m1/day04", "m1"]  # not "up to date"
        assert instance.get_materialized_partitions(dg.AssetKey("raw_volume")) == {"m1/day00", "m1/day04"}
    assert (second / "volumes" / "m1" / "day00.ome.zarr").exists() and instance_home(second) == second / "dagster"
    repository = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert {key: repository[key] for key in TEMPLATE} == TEMPLATE  # `make ui` runs with the same settings
