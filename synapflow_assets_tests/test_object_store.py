"""A data root on an S3-compatible server (moto on 127.0.0.1, started by deploy/services/s3.sh): the same
feature tables as a local root, outputs stored as objects, and an unreachable store failing loudly."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("s3fs", reason="object-store roots need the s3fs package (pip install -e '.[dev]')")

from synapflow_assets.defs.instance import open_instance
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import query
from synapflow_assets.store.locations import StorageError, location, read_parquet
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "services" / "s3.sh"
IMPORTED = DetectionSettings(source="imported")
TABLES = ("sessions", "detections", "spines", "spine_features", "tracks", "dynamics")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with the bucket `lab`; the AWS variables point at it."""
    state, port = tmp_path_factory.mktemp("s3"), free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        ["bash", str(SCRIPT), "start", str(state), str(port)], env=env, check=True, capture_output=True, timeout=120
    )
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    try:
        location("s3://lab").fs.mkdir("lab")
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], env=env, capture_output=True, timeout=60)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def land(folder: Path) -> None:
    for sim in simulate_animal(SimulationParams(shape=(6, 128, 128)), n_sessions=2, seed=3):
        write_session(sim, folder, "m1", f"day{4 * sim.index:02d}")


def table(store: Path, name: str) -> pl.DataFrame:
    frame = query(store, f"SELECT * FROM {name}").drop(["run_id", "computed_at"], strict=False)
    return frame.sort(frame.columns) if len(frame) else frame


def test_a_lab_on_the_object_store_gives_the_tables_of_a_local_one(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNAPFLOW_CACHE", str(tmp_path / "cache"))  # the pair cache of an earlier run stays out
    land(tmp_path / "local" / "landing")
    bucket = location("s3://lab/run1")
    bucket.fs.put(str(tmp_path / "local" / "landing"), "lab/run1/landing", recursive=True)

    with open_instance(tmp_path / "local") as instance:
        local = process_landed(instance, DataLake(root=str(tmp_path / "local")), detection=IMPORTED)
    remote_lake = DataLake(root="s3://lab/run1", store=str(tmp_path / "remote.duckdb"))
    with open_instance(tmp_path / "instance") as instance:
        remote = process_landed(instance, remote_lake, detection=IMPORTED)
        assert remote.failed == {} and sorted(remote.materialized) == sorted(local.materialized)
        again = process_landed(instance, remote_lake, detection=IMPORTED)
        assert again.materialized == [], "a second ingest over the object store found outputs stale"
        chunk = sorted(bucket.fs.find("lab/run1/volumes/m1/day04.ome.zarr/0/c"))[0]
        bucket.fs.rm(chunk)
        repaired = process_landed(instance, remote_lake, detection=IMPORTED)
    assert repaired.materialized[0].startswith("m1/day04 (raw_volume") and any(
        "chunks of '0' missing" in w for w in repaired.warnings
    )
    assert chunk in bucket.fs.find("lab/run1/volumes/m1/day04.ome.zarr/0/c")

    for name in TABLES:
        a, b = table(tmp_path / "local" / "features.duckdb", name), table(tmp_path / "remote.duckdb", name)
        differing = [c for c in a.columns if not a[c].equals(b[c])] if a.shape == b.shape else ["shape"]
        assert len(a) > 0 and not differing, (
            f"{name}: {differing} {a.select(differing[:1]).head(3) if differing != ['shape'] else ''} "
            f"{b.select(differing[:1]).head(3) if differing != ['shape'] else ''}"
        )
    stored = set(bucket.fs.find("lab/run1"))
    for key in (
        "volumes/m1/day00.ome.zarr/zarr.json",
        "detections/m1/day04.parquet",
        "spines/m1/day04.parquet",
        "candidates/m1/day00.parquet",
        "tracks/m1.parquet",
    ):
        assert f"lab/run1/{key}" in stored, key
    assert read_parquet(remote_lake.tracks_path("m1")).equals(
        pl.read_parquet(tmp_path / "local" / "tracks" / "m1.parquet")
    )
    assert not (tmp_path / "volumes").exists()


def test_an_unreachable_store_fails_in_one_line_naming_it(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    lake = DataLake(root="s3://lab/elsewhere", store=str(tmp_path / "store.duckdb"))
    with open_instance(tmp_path / "instance") as instance, pytest.raises(StorageError) as error:
        process_landed(instance, lake, detection=IMPORTED)
    assert "cannot reach the object store s3://lab/elsewhere at http://127.0.0.1:" in str(error.value)
    assert "\n" not in str(error.value) and not (tmp_path / "store.duckdb").exists()


def test_a_missing_bucket_and_missing_settings_are_named(s3_server, tmp_path, monkeypatch):
    with (
        open_instance(tmp_path / "instance") as instance,
        pytest.raises(StorageError, match="no-such-bucket/lab: no such bucket at http"),
    ):
        process_landed(instance, DataLake(root="s3://no-such-bucket/lab", store=str(tmp_path / "s.duckdb")))
    with pytest.raises(StorageError, match="set SYNAPFLOW_STORE"):
        _ = DataLake(root="s3://lab/x").store_path
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(StorageError, match="set MLFLOW_TRACKING_URI"):
        _ = DataLake(root="s3://lab/x").registry_root


def test_ingest_on_an_object_store_without_a_shared_instance_exits_2(s3_server, tmp_path):
    env = {**os.environ, "SYNAPFLOW_STORE": str(tmp_path / "s.duckdb")}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "ingest", "--data", "s3://lab/cli"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: s3://lab/cli: an object-store data root needs a shared Dagster instance; set DAGSTER_HOME")
    )
